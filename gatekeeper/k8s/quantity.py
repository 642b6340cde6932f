"""Kubernetes resource.Quantity, exactly: parse, compare, add, subtract, scale and print canonically.

A quantity is held as a whole number of nano-units (value × 10⁹) plus the suffix family it was
written in. Parsing rounds a finer value away from zero to the next nano-unit, as Kubernetes does
("0.9n" → "1n"), so every quantity, and every sum, difference and integer multiple of quantities,
is exactly a whole number of nano-units: no floats anywhere.

Printing follows Kubernetes' CanonicalizeBytes: the largest suffix of the quantity's family that
needs no fractional digits; binary quantities that are below 1024 or not whole print in decimal
("1.5Gi" → "1536Mi", "0.5Ki" → "512", "1.5" → "1500m", "1000m" → "1"). Like Quantity.String(),
str() of a parsed quantity returns the input text itself where Kubernetes' ParseQuantity keeps
it: a small whole mantissa whose scale is a multiple of three, which is canonical except for a
sign, leading zeros or a decimal point ("+1", "0100m", "1.100", "1.Ki", "1E3" print as written).
"""

from __future__ import annotations

import enum
import functools
import re
from fractions import Fraction
from functools import total_ordering
from typing import Final

from gatekeeper.errors import InvalidInput

NANOS_PER_UNIT: Final = 10**9

# Parsing caps a binary quantity at 2^63-1 (Kubernetes' maxAllowed); decimal ones are not capped.
_BINARY_CAP_NANOS: Final = (2**63 - 1) * NANOS_PER_UNIT

# Limits that Kubernetes does not have but an exact big-integer representation needs: without them
# "1e999999999" would allocate gigabytes. Real quantities stay far inside both.
MAX_TEXT_LENGTH: Final = 128
MAX_EXPONENT: Final = 1000

_MAX_INT64_DIGITS: Final = 18  # Kubernetes' maxInt64Factors: its int64 fast path takes at most this many

_DECIMAL_SUFFIXES: Final = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES: Final = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT: Final = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER: Final = {power // 10: suffix for suffix, power in _BINARY_SUFFIXES.items()}
_MAX_BINARY_POWER: Final = max(_BINARY_BY_POWER)

# <sign><number><suffix>; the number is "1", "1.5", "1." or ".5" (Kubernetes accepts "1." and "1.G").
_QUANTITY_RE: Final = re.compile(
    r"(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?P<suffix>.*)", re.DOTALL
)
_EXPONENT_RE: Final = re.compile(r"[eE](?P<exp>[+-]?[0-9]+)")

_EXPECTED: Final = (
    "expected <sign><number><suffix> such as 100m, 0.5, 1Gi, 1e3 or -1.5Mi: a number like 1, 1.5, 1. or .5; "
    "a suffix among n u m k M G T P E, Ki Mi Gi Ti Pi Ei, e<exponent>, or none"
)


class QuantityError(InvalidInput):
    """A string that is not a Kubernetes quantity; the message names the value and what was expected."""


class Format(enum.Enum):
    """The suffix family a quantity was written in, and is printed in again."""

    DECIMAL_SI = "DecimalSI"  # 12M = 12 × 10⁶
    BINARY_SI = "BinarySI"  # 12Mi = 12 × 2²⁰
    DECIMAL_EXPONENT = "DecimalExponent"  # 12e6


@total_ordering
class Quantity:
    """An exact Kubernetes quantity. Equality, hashing and ordering use the value only ("1Gi" == "1024Mi")."""

    __slots__ = ("_format", "_nanos", "_text")

    def __init__(self, nanos: int, fmt: Format = Format.DECIMAL_SI, *, text: str | None = None) -> None:
        if isinstance(nanos, bool) or not isinstance(nanos, int):
            raise TypeError(f"Quantity: nanos must be an int, got {type(nanos).__name__}")
        self._nanos = nanos
        self._format = fmt
        self._text = text  # the parsed text, where Kubernetes would print it back unchanged

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Quantity:
        """Parse like Kubernetes' ParseQuantity (no surrounding whitespace); QuantityError if invalid."""
        return parse_quantity(text)

    @classmethod
    def from_int(cls, value: int, fmt: Format = Format.DECIMAL_SI) -> Quantity:
        """resource.NewQuantity: a whole number of units."""
        return cls(value * NANOS_PER_UNIT, fmt)

    @classmethod
    def from_milli(cls, milli: int, fmt: Format = Format.DECIMAL_SI) -> Quantity:
        """resource.NewMilliQuantity: a whole number of thousandths."""
        return cls(milli * (NANOS_PER_UNIT // 1000), fmt)

    # -- accessors ------------------------------------------------------------------------------

    @property
    def nanos(self) -> int:
        """The exact value in nano-units (value × 10⁹)."""
        return self._nanos

    @property
    def format(self) -> Format:
        return self._format

    def as_fraction(self) -> Fraction:
        return Fraction(self._nanos, NANOS_PER_UNIT)

    def is_zero(self) -> bool:
        return self._nanos == 0

    def sign(self) -> int:
        return (self._nanos > 0) - (self._nanos < 0)

    def value(self) -> int:
        """Quantity.Value(): whole units, rounded away from zero (1.1 → 2, -1.1 → -2)."""
        return _div_away_from_zero(self._nanos, NANOS_PER_UNIT)

    def milli_value(self) -> int:
        """Quantity.MilliValue(): thousandths, rounded away from zero (1n → 1)."""
        return _div_away_from_zero(self._nanos, NANOS_PER_UNIT // 1000)

    # -- arithmetic (Kubernetes: the result keeps the left operand's format unless that is zero) ---

    def __add__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        return Quantity(self._nanos + other._nanos, self._combined_format(other))

    def __sub__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        return Quantity(self._nanos - other._nanos, self._combined_format(other))

    def __neg__(self) -> Quantity:
        return Quantity(-self._nanos, self._format)

    def __mul__(self, factor: int) -> Quantity:
        if isinstance(factor, bool) or not isinstance(factor, int):
            return NotImplemented
        return Quantity(self._nanos * factor, self._format)

    __rmul__ = __mul__

    def _combined_format(self, other: Quantity) -> Format:
        return other._format if self._nanos == 0 else self._format

    # -- comparison -----------------------------------------------------------------------------

    def cmp(self, other: Quantity) -> int:
        """Quantity.Cmp: -1, 0 or 1."""
        return (self._nanos > other._nanos) - (self._nanos < other._nanos)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self._nanos == other._nanos

    def __lt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self._nanos < other._nanos

    def __hash__(self) -> int:
        return hash(self._nanos)

    # -- printing -------------------------------------------------------------------------------

    def __str__(self) -> str:
        """Quantity.String(): the kept input text, else the canonical form."""
        return self._text if self._text is not None else self.canonical()

    def canonical(self) -> str:
        """Quantity.CanonicalizeBytes: the canonical form, whatever the input text was."""
        return canonical(self._nanos, self._format)

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r}, {self._format.value})"


ZERO: Final = Quantity(0)


def parse_quantity(text: str) -> Quantity:
    """Parse a quantity string exactly as Kubernetes' ParseQuantity does, or raise QuantityError."""
    if not isinstance(text, str):
        raise QuantityError(f"quantity {text!r}: expected a string, got {type(text).__name__}")
    return _parse_text(text)


# An admission request parses the same few dozen quantities again and again (its containers', the
# namespace's LimitRange and quotas), and a Quantity is immutable: remember the recent ones. Bounded,
# since the texts come from requests; a text that fails is not remembered and fails again.
@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Quantity:
    if len(text) > MAX_TEXT_LENGTH:
        raise QuantityError(f"quantity {text[:32]!r}...: longer than {MAX_TEXT_LENGTH} characters")
    match = _QUANTITY_RE.fullmatch(text)
    if match is None or not (match["int"] or match["frac"]):
        raise QuantityError(f"invalid quantity {text!r}: {_EXPECTED}")
    digits = match["int"] + (match["frac"] or "")
    base, power, fmt = _interpret_suffix(text, match["suffix"])
    kept = text if _keeps_text(match["int"], match["frac"] or "", base, power) else None
    numerator = int(digits) * NANOS_PER_UNIT
    denominator = 10 ** len(match["frac"] or "")
    if base == 2:
        numerator <<= power
    elif power >= 0:
        numerator *= 10**power
    else:
        denominator *= 10**-power
    magnitude = -(-numerator // denominator)  # round up to the next nano-unit, as Kubernetes does
    if fmt is Format.BINARY_SI:
        magnitude = min(magnitude, _BINARY_CAP_NANOS)
        if 0 < magnitude < NANOS_PER_UNIT:
            fmt = Format.DECIMAL_SI
    return Quantity(-magnitude if match["sign"] == "-" else magnitude, fmt, text=kept)


def _keeps_text(int_digits: str, frac: str, base: int, power: int) -> bool:
    """Whether Kubernetes' ParseQuantity takes its int64 fast path and keeps the input as String()."""
    num = int_digits.lstrip("0") or "0"
    shifted = num + frac
    if base == 2:
        # fast path: no fraction, few enough digits; kept when the mantissa is not a multiple of 8
        precision = 15 - len(num) - power * 3 // 10 - 1
        return not frac and precision >= 0 and int(num) % 8 != 0
    scale = power - len(frac)
    return (
        len(shifted) <= _MAX_INT64_DIGITS
        and scale >= -9
        and scale % 3 == 0
        and not shifted.endswith("000")
        and not shifted.startswith("0")
    )


def parse_json_quantity(value: object) -> Quantity:
    """A quantity as it appears in a JSON/YAML object: a string (surrounding spaces ignored, like
    Quantity.UnmarshalJSON) or a bare number."""
    if isinstance(value, str):
        return parse_quantity(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return parse_quantity(str(value))
    if isinstance(value, float):
        parsed = parse_quantity(repr(value))  # the JSON text is lost, so no text is kept
        return Quantity(parsed.nanos, parsed.format)
    raise QuantityError(f'quantity {value!r}: expected a string such as "500m" or "1Gi", or a number')


def _interpret_suffix(text: str, suffix: str) -> tuple[int, int, Format]:
    """(base, exponent, format) of a suffix: decimal table, binary table, then e<exponent>."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], Format.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], Format.BINARY_SI
    exponent = _EXPONENT_RE.fullmatch(suffix)
    if exponent is None:
        raise QuantityError(f"invalid quantity {text!r}: unknown suffix {suffix!r}; {_EXPECTED}")
    power = int(exponent["exp"])
    if abs(power) > MAX_EXPONENT:
        raise QuantityError(f"invalid quantity {text!r}: exponent {power} is outside ±{MAX_EXPONENT}")
    return 10, power, Format.DECIMAL_EXPONENT


def canonical(nanos: int, fmt: Format) -> str:
    """Kubernetes' canonical text for a value in nano-units written in suffix family `fmt`."""
    if nanos == 0:
        return "0"
    if fmt is Format.BINARY_SI and abs(nanos) >= 1024 * NANOS_PER_UNIT and nanos % NANOS_PER_UNIT == 0:
        return _canonical_binary(nanos // NANOS_PER_UNIT)
    if fmt is Format.BINARY_SI:
        fmt = Format.DECIMAL_SI  # below 1024, or not whole: binary would round, so print decimal
    mantissa, exponent = _decimal_mantissa(nanos)
    if fmt is Format.DECIMAL_SI and exponent in _DECIMAL_BY_EXPONENT:
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"
    # DecimalExponent, and DecimalSI beyond "E" (Kubernetes falls back to e-notation there too).
    return f"{mantissa}e{exponent}" if exponent else str(mantissa)


def _decimal_mantissa(nanos: int) -> tuple[int, int]:
    """(mantissa, exponent) with the exponent the largest multiple of 3 that keeps the mantissa whole."""
    mantissa, exponent = nanos, -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    return mantissa * 10**shift, exponent - shift


def _canonical_binary(units: int) -> str:
    mantissa, power = units, 0
    # Stop at Ei: Kubernetes has no larger suffix (and would drop the exponent beyond it).
    while power < _MAX_BINARY_POWER and abs(mantissa) >= 1024 and mantissa % 1024 == 0:
        mantissa //= 1024
        power += 1
    return f"{mantissa}{_BINARY_BY_POWER.get(power, '')}"


def _div_away_from_zero(numerator: int, denominator: int) -> int:
    quotient = -(-abs(numerator) // denominator)
    return quotient if numerator >= 0 else -quotient


def exceeds_ratio(limit: Quantity, request: Quantity, max_ratio: Quantity) -> bool:
    """|limit| > |request| × max_ratio, exactly (LimitRanger's maxLimitRequestRatio; equality passes)."""
    # In nano-units: |L|/10⁹ > |R|/10⁹ × K/10⁹  ⇔  |L| × 10⁹ > |R| × K
    return abs(limit.nanos) * NANOS_PER_UNIT > abs(request.nanos) * max_ratio.nanos


# Beyond this many powers of ten between the two values Kubernetes prints the ratio as a mantissa
# with six decimals and an exponent rather than building the whole number.
_RATIO_FOLD_LIMIT: Final = 40


def ratio_string(limit: Quantity, request: Quantity) -> str:
    """|limit| / |request| as LimitRanger prints it: half-to-even at six decimals ("2.000000",
    "1.333333"), or "1.500000e45" when the two differ by more than 10^40. request must be non-zero."""
    if request.is_zero():
        raise ZeroDivisionError("ratio_string: request is 0")
    if limit.is_zero():
        return "0.000000"
    limit_digits, limit_exp = _decimal_mantissa(abs(limit.nanos))
    request_digits, request_exp = _decimal_mantissa(abs(request.nanos))
    exponent = limit_exp - request_exp
    if abs(exponent) <= _RATIO_FOLD_LIMIT:
        return _six_decimals(Fraction(abs(limit.nanos), abs(request.nanos)))
    mantissa = Fraction(limit_digits, request_digits)
    shift = 0
    while mantissa >= 10:
        mantissa /= 10
        shift += 1
    while mantissa < 1:
        mantissa *= 10
        shift -= 1
    text = _six_decimals(mantissa)
    if text.startswith("10."):  # rounding carried the mantissa to ten
        text, shift = _six_decimals(Fraction(round(mantissa * 10**6), 10**7)), shift + 1
    return f"{text}e{exponent + shift}" if exponent + shift else text


def _six_decimals(value: Fraction) -> str:
    millionths = round(value * 1_000_000)  # Fraction.__round__ rounds half to even
    whole, fraction = divmod(millionths, 1_000_000)
    return f"{whole}.{fraction:06d}"
