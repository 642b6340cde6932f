"""gatekeeper.k8s.quantity against Kubernetes' own examples (apimachinery quantity_test.go) and properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gatekeeper.k8s.quantity import (
    ZERO,
    Format,
    Quantity,
    QuantityError,
    canonical,
    exceeds_ratio,
    parse_json_quantity,
    parse_quantity,
    ratio_string,
)

DSI, BSI, DEX = Format.DECIMAL_SI, Format.BINARY_SI, Format.DECIMAL_EXPONENT
MAX_INT64 = 2**63 - 1


def q(text: str) -> Quantity:
    return parse_quantity(text)


# TestQuantityParse: input, exact value, format.
PARSE_TABLE: list[tuple[str, Fraction, Format]] = [
    ("0", Fraction(0), DSI),
    ("0n", Fraction(0), DSI),
    ("0m", Fraction(0), DSI),
    ("0Ki", Fraction(0), BSI),
    ("0Gi", Fraction(0), BSI),
    ("0T", Fraction(0), DSI),
    ("1", Fraction(1), DSI),
    ("1Ki", Fraction(1024), BSI),
    ("8Ki", Fraction(8 * 1024), BSI),
    ("7Mi", Fraction(7 * 2**20), BSI),
    ("6Gi", Fraction(6 * 2**30), BSI),
    ("5Ti", Fraction(5 * 2**40), BSI),
    ("4Pi", Fraction(4 * 2**50), BSI),
    ("3Ei", Fraction(3 * 2**60), BSI),
    ("100Ti", Fraction(100 * 2**40), BSI),
    ("5n", Fraction(5, 10**9), DSI),
    ("4u", Fraction(4, 10**6), DSI),
    ("3m", Fraction(3, 1000), DSI),
    ("8k", Fraction(8000), DSI),
    ("50k", Fraction(50000), DSI),
    ("7M", Fraction(7 * 10**6), DSI),
    ("6G", Fraction(6 * 10**9), DSI),
    ("300T", Fraction(3 * 10**14), DSI),
    ("2P", Fraction(2 * 10**15), DSI),
    ("1E", Fraction(10**18), DSI),
    ("1E-3", Fraction(1, 1000), DEX),
    ("1e3", Fraction(1000), DEX),
    ("1E6", Fraction(10**6), DEX),
    ("1e14", Fraction(10**14), DEX),
    ("100.035k", Fraction(100035), DSI),
    ("0.001", Fraction(1, 1000), DSI),
    ("0.0005k", Fraction(1, 2), DSI),
    ("0.00050k", Fraction(1, 2), DSI),
    ("0.50000", Fraction(1, 2), DSI),
    ("0.5e-1", Fraction(5, 100), DEX),
    ("10.035M", Fraction(10035000), DSI),
    ("1.3E+6", Fraction(1300000), DEX),
    ("1.53E12", Fraction(153 * 10**10), DEX),
    ("1.7E18", Fraction(17 * 10**17), DEX),
    ("9.01", Fraction(901, 100), DSI),
    ("7.123456M", Fraction(7123456), DSI),
    ("6.987654321G", Fraction(6987654321), DSI),
    ("1.01E", Fraction(101 * 10**16), DSI),
    # things that saturate / round up to nano
    ("3.001n", Fraction(4, 10**9), DSI),
    ("1.1E-9", Fraction(2, 10**9), DEX),
    ("0.0000000001", Fraction(1, 10**9), DSI),
    ("0.5e-9", Fraction(1, 10**9), DEX),
    ("0.9n", Fraction(1, 10**9), DSI),
    ("0.00000012345", Fraction(124, 10**9), DSI),
    ("0.00000012354", Fraction(124, 10**9), DSI),
    ("9Ei", Fraction(MAX_INT64), BSI),
    ("9223372036854775807Ki", Fraction(MAX_INT64), BSI),
    ("12E", Fraction(12 * 10**18), DSI),
    ("18446744073709551616", Fraction(2**64), DSI),  # decimal quantities are not capped
    # fractional binary
    ("100.035Ki", Fraction(10243584, 100), BSI),
    ("0.5Mi", Fraction(2**19), BSI),
    ("0.05Gi", Fraction(536870912, 10), BSI),
    ("0.025Ti", Fraction(274877906944, 10), BSI),
    # "things written by trolls"
    ("0.000000000001Ki", Fraction(2, 10**9), DSI),  # rounds up, becomes decimal
    (".001", Fraction(1, 1000), DSI),
    (".0001k", Fraction(1, 10), DSI),
    ("1.", Fraction(1), DSI),
    ("1.G", Fraction(10**9), DSI),
]


@pytest.mark.parametrize(("text", "value", "fmt"), PARSE_TABLE)
def test_parse_matches_kubernetes(text: str, value: Fraction, fmt: Format) -> None:
    for prefix, sign in (("", 1), ("+", 1), ("-", -1)):
        parsed = q(prefix + text)
        assert parsed.as_fraction() == sign * value, prefix + text
        assert parsed.format is fmt, prefix + text


INVALID = [
    "",
    "1.1.M",
    "1+1.0M",
    "0.1mi",
    "0.1am",
    "aoeu",
    ".5i",
    "1i",
    "-3.01i",
    "-3.01e-",
    " 1",
    "1 ",
    ".",
    "-",
    "+",
    "-.",
    "1e",
    "1e+",
    "1K",
    "1e3.5",
    "1Gi ",
    "1\n",
    "0x10",
    "1_000",
    "１",
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_quantities_are_rejected_with_the_value_named(text: str) -> None:
    with pytest.raises(QuantityError) as err:
        q(text)
    assert repr(text) in str(err.value)


def test_error_says_what_was_expected() -> None:
    with pytest.raises(QuantityError, match=r"unknown suffix 'K'.*Ki Mi Gi"):
        q("1K")


def test_absurd_exponents_and_lengths_are_refused_not_computed() -> None:
    with pytest.raises(QuantityError, match="exponent 999999999"):
        q("1e999999999")
    with pytest.raises(QuantityError, match="longer than"):
        q("1" * 500)


# TestQuantityString: (value, format) → canonical text.
STRING_TABLE: list[tuple[Fraction, Format, str]] = [
    (Fraction(2**30), BSI, "1Gi"),
    (Fraction(300 * 2**20), BSI, "300Mi"),
    (Fraction(6 * 1024), BSI, "6Ki"),
    (Fraction(1001 * 2**30), BSI, "1001Gi"),
    (Fraction(2**40), BSI, "1Ti"),
    (Fraction(5), BSI, "5"),
    (Fraction(1, 2), BSI, "500m"),
    (Fraction(10**9), DSI, "1G"),
    (Fraction(1, 1000), DSI, "1m"),
    (Fraction(80, 1000), DSI, "80m"),
    (Fraction(1080, 1000), DSI, "1080m"),
    (Fraction(300 * 10**6), DSI, "300M"),
    (Fraction(10**12), DSI, "1T"),
    (Fraction(10**18), DSI, "1E"),
    (Fraction(10**21), DSI, "1e21"),
    (Fraction(5 * 10**21), DSI, "5e21"),
    (Fraction(10**24), DSI, "1e24"),
    (Fraction(1234567 * 10**6), DSI, "1234567M"),
    (Fraction(1234567, 1000), BSI, "1234567m"),
    (Fraction(3000), DSI, "3k"),
    (Fraction(1025), BSI, "1025"),
    (Fraction(0), DSI, "0"),
    (Fraction(0), BSI, "0"),
    (Fraction(0), DEX, "0"),
    (Fraction(10**9), DEX, "1e9"),
    (Fraction(1, 1000), DEX, "1e-3"),
    (Fraction(1, 10**9), DEX, "1e-9"),
    (Fraction(80, 1000), DEX, "80e-3"),
    (Fraction(300 * 10**6), DEX, "300e6"),
    (Fraction(3000), DEX, "3e3"),
    (Fraction(1, 10**9), DSI, "1n"),
    (Fraction(1080, 10**9), DSI, "1080n"),
    (Fraction(1, 10**6), DSI, "1u"),
    (Fraction(1080, 10**6), DSI, "1080u"),
    (Fraction(MAX_INT64), BSI, "9223372036854775807"),
]


@pytest.mark.parametrize(("value", "fmt", "text"), STRING_TABLE)
def test_canonical_text_matches_kubernetes(value: Fraction, fmt: Format, text: str) -> None:
    nanos = value * 10**9
    assert nanos.denominator == 1
    quantity = Quantity(int(nanos), fmt)
    assert str(quantity) == text
    if value:
        assert str(-quantity) == "-" + text
    assert str(q(text)) == text


# TestQuantityParseEmit plus the alternates of TestQuantityString and the brief's examples.
EMIT_TABLE = [
    ("1Ki", "1Ki"),
    ("1024Mi", "1Gi"),
    ("1000M", "1G"),
    (".001Ki", "1024m"),
    (".000001Ki", "1024u"),
    (".000000001Ki", "1024n"),
    (".000000000001Ki", "2n"),
    ("1024Mi", "1Gi"),
    ("307200Ki", "300Mi"),
    ("5000m", "5"),
    ("0.5", "500m"),
    ("0.001T", "1G"),
    ("1000u", "1m"),
    ("1.08", "1080m"),
    ("1080000000n", "1080m"),
    ("1000E", "1e21"),
    (".001e12", "1e9"),
    ("0.001e0", "1e-3"),
    ("1000e-12", "1e-9"),
    ("00", "0"),
    ("1.5Gi", "1536Mi"),
    ("1.5", "1500m"),
    ("1000m", "1"),
    ("0.5Ki", "512"),
    ("1.1Ki", "1126400m"),
    ("1025Ki", "1025Ki"),
    ("+1Ki", "1Ki"),
    ("0100m", "100m"),
    ("1.100", "1100m"),
    ("10e3", "10e3"),
    ("1.5e3", "1500"),
    ("-0", "0"),
    ("-0Ki", "0"),
    ("1048576Ei", "9223372036854775807"),
    ("8Ei", "9223372036854775807"),
    ("4Ei", "4Ei"),
]


@pytest.mark.parametrize(("text", "expected"), EMIT_TABLE)
def test_parse_then_canonicalize(text: str, expected: str) -> None:
    assert q(text).canonical() == expected
    if not q(text).is_zero():
        assert q("-" + text.lstrip("+")).canonical() == "-" + expected


# Quantity.String() returns the input itself where ParseQuantity's int64 fast path keeps it.
KEPT_TEXT = [
    ("+1", "+1"),
    ("0100m", "0100m"),
    ("1.100", "1.100"),
    ("-1.100", "-1.100"),
    ("1.500k", "1.500k"),
    ("1.G", "1.G"),
    ("1E3", "1E3"),
    ("1e+3", "1e+3"),
    ("+1Ki", "+1Ki"),
    ("01Ki", "01Ki"),
    ("1.Ki", "1.Ki"),
    # not kept: canonicalized
    ("8Ki", "8Ki"),
    ("1024Ki", "1Mi"),
    ("0.5", "500m"),
    ("0.100", "100m"),
    ("1.10", "1100m"),
    ("2.000", "2"),
    ("1e100", "10e99"),
    ("1.5Gi", "1536Mi"),
    ("12345678901234567.8", "12345678901234567800m"),
    ("1234567890123456789", "1234567890123456789"),
    ("1000000000000000000000", "1e21"),
    ("-0", "0"),
]


@pytest.mark.parametrize(("text", "expected"), KEPT_TEXT)
def test_str_keeps_the_input_text_where_kubernetes_does(text: str, expected: str) -> None:
    assert str(q(text)) == expected
    assert str(q(str(q(text)))) == expected


def test_arithmetic_drops_the_kept_text() -> None:
    assert str(q("1.100") + ZERO) == "1100m"
    assert str(ZERO + q("+1Ki")) == "1Ki"
    assert str(-q("+1")) == "-1"
    assert str(q("1.100") * 1) == "1100m"


def test_compare_like_kubernetes() -> None:
    assert q("0").cmp(q("0")) == 0
    assert q("100m").cmp(q("50m")) == 1
    assert q("50m").cmp(q("100m")) == -1
    assert q("10000T").cmp(q("100Gi")) == 1
    assert q("1Gi") == q("1024Mi") == q("1073741824")
    assert len({q("1Gi"), q("1024Mi"), q("1.073741824G")}) == 1
    assert q("999m") < q("1") <= q("1000m") < q("1001m")
    assert max(q("1Gi"), q("1G")) == q("1Gi")


def test_arithmetic_keeps_the_left_format_unless_it_is_zero() -> None:
    assert str(q("1Gi") + q("512Mi")) == "1536Mi"
    assert str(q("100m") + ZERO) == "100m"
    assert str(ZERO + q("1Gi")) == "1Gi"
    assert str(ZERO - q("1Gi")) == "-1Gi"
    assert str(q("1Gi") - ZERO) == "1Gi"
    assert str(q("1") - q("1500m")) == "-500m"
    assert str(q("1Gi") + q("1")) == "1073741825"
    assert str(q("1G") + q("1Gi")) == "2073741824"
    assert str(q("250m") * 4) == "1"
    assert str(3 * q("512Mi")) == "1536Mi"
    assert str(-q("1.5")) == "-1500m"
    assert (q("1e3") + q("1")).format is Format.DECIMAL_EXPONENT
    # parsing caps binary quantities at 2^63-1, arithmetic does not; beyond Ei the mantissa grows
    assert str(q("4Ei") * 1024) == "4096Ei"


def test_multiply_refuses_non_integers() -> None:
    with pytest.raises(TypeError):
        q("1") * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        q("1") * True


@pytest.mark.parametrize(
    ("text", "value", "milli"),
    [
        ("1", 1, 1000),
        ("1.1", 2, 1100),
        ("100m", 1, 100),
        ("1n", 1, 1),
        ("0", 0, 0),
        ("-1.1", -2, -1100),
        ("1Ki", 1024, 1024000),
        ("1500u", 1, 2),
    ],
)
def test_value_and_milli_value_round_away_from_zero(text: str, value: int, milli: int) -> None:
    assert q(text).value() == value
    assert q(text).milli_value() == milli


def test_constructors() -> None:
    assert str(Quantity.from_int(1024, BSI)) == "1Ki"
    assert str(Quantity.from_int(1000)) == "1k"
    assert str(Quantity.from_milli(1)) == "1m"
    assert str(Quantity.from_milli(1024, BSI)) == "1024m"
    assert str(Quantity.from_milli(10**6, DEX)) == "1e3"
    assert Quantity.parse("2") == Quantity.from_int(2)


@pytest.mark.parametrize(
    ("raw", "expected"), [(" 1", "1"), ("1 ", "1"), (1, "1"), (-1, "-1"), (0.5, "500m"), (1e21, "1e21")]
)
def test_json_values(raw: object, expected: str) -> None:
    assert str(parse_json_quantity(raw)) == expected


@pytest.mark.parametrize("raw", [True, None, [], {}, float("inf"), "1 Gi"])
def test_json_values_rejected(raw: object) -> None:
    with pytest.raises(QuantityError):
        parse_json_quantity(raw)


@pytest.mark.parametrize(
    ("limit", "req", "expected"),
    [
        ("2", "1", "2.000000"),
        ("400m", "300m", "1.333333"),
        ("2", "3", "0.666667"),
        ("1Gi", "1G", "1.073742"),
        ("9223372036854775809", "1", "9223372036854775809.000000"),
        ("-2", "1", "2.000000"),  # magnitudes
        ("1000000005n", "2", "0.500000"),  # 0.5000000025 → 0.500000
        ("1000000001n", "2000000000", "0.000000"),  # below half a millionth
        ("3000001n", "2000", "0.000002"),  # 1.5000005e-6: just above half a millionth, rounds up
        ("1e50", "1n", "1.000000e59"),
        ("15e50", "1", "1.500000e51"),
        ("1n", "1e50", "1.000000e-59"),
        ("9999999999e45", "1n", "1.000000e64"),  # rounding carries the mantissa to ten
    ],
)
def test_ratio_string(limit: str, req: str, expected: str) -> None:
    assert ratio_string(q(limit), q(req)) == expected


def test_ratio_string_rounds_half_to_even() -> None:
    assert ratio_string(q("5n"), q("10m")) == "0.000000"  # exactly 0.0000005
    assert ratio_string(q("15n"), q("10m")) == "0.000002"  # exactly 0.0000015
    assert ratio_string(q("25n"), q("10m")) == "0.000002"  # exactly 0.0000025
    with pytest.raises(ZeroDivisionError):
        ratio_string(q("1"), ZERO)


def test_exceeds_ratio_is_exact() -> None:
    assert not exceeds_ratio(q("2"), q("1"), q("2"))
    assert exceeds_ratio(q("2000000001n"), q("1"), q("2"))
    assert not exceeds_ratio(q("18446744073709551616"), q("18446744073709551616"), q("1"))
    assert exceeds_ratio(q("9223372036854775809"), q("1"), q("2"))
    assert exceeds_ratio(q("-3"), q("1"), q("2"))
    assert not exceeds_ratio(q("1500m"), q("1"), q("1.5"))


# -- properties ---------------------------------------------------------------------------------

formats = st.sampled_from(list(Format))
nanos = st.one_of(
    st.integers(min_value=-(10**27), max_value=10**27),
    st.builds(lambda m, p: m * 1024**p * 10**9, st.integers(-2000, 2000), st.integers(0, 5)),
    st.builds(lambda m, p: m * 10**p, st.integers(-999, 999), st.integers(0, 40)),
)
quantities = st.builds(Quantity, nanos, formats)


@settings(max_examples=300, deadline=None)
@given(quantities)
def test_print_then_parse_round_trips(quantity: Quantity) -> None:
    assume(quantity.format is not Format.BINARY_SI or abs(quantity.value()) <= MAX_INT64)  # parse caps those
    again = q(str(quantity))
    assert again == quantity
    # Not always the same text: a binary 2000 prints "2000", which parses as decimal and prints "2k",
    # exactly as in Kubernetes; from then on the text is stable.
    assert str(q(str(again))) == str(again)


@settings(max_examples=200, deadline=None)
@given(quantities, quantities)
def test_order_agrees_with_exact_values(a: Quantity, b: Quantity) -> None:
    assert (a < b) == (a.as_fraction() < b.as_fraction())
    assert (a == b) == (a.as_fraction() == b.as_fraction())
    assert a.cmp(b) == -b.cmp(a)
    assert (a + b).as_fraction() == a.as_fraction() + b.as_fraction()
    assert (a - b).as_fraction() == a.as_fraction() - b.as_fraction()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["", "+", "-"]),
    st.from_regex(r"[0-9]{1,8}(\.[0-9]{0,8})?|\.[0-9]{1,8}", fullmatch=True),
    st.sampled_from(
        [
            "",
            "n",
            "u",
            "m",
            "k",
            "M",
            "G",
            "T",
            "P",
            "E",
            "Ki",
            "Mi",
            "Gi",
            "Ti",
            "Pi",
            "Ei",
            "e3",
            "E-2",
            "e+7",
            "e-12",
        ]
    ),
)
def test_any_valid_text_parses_to_its_exact_value_rounded_up_to_nano(
    sign: str, number: str, suffix: str
) -> None:
    parsed = q(sign + number + suffix)
    if suffix.endswith("i"):
        scale = Fraction(2) ** {"K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}[suffix[0]]
    elif suffix[:1] in ("e", "E") and len(suffix) > 1:
        scale = Fraction(10) ** int(suffix[1:])
    else:
        scale = (
            Fraction(10)
            ** {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}[suffix]
        )
    exact = Fraction(number if not number.endswith(".") else number[:-1]) * scale
    if suffix.endswith("i"):
        exact = min(exact, Fraction(MAX_INT64))  # parsing caps binary quantities
    nano = Fraction(1, 10**9)
    magnitude = abs(parsed.as_fraction())
    assert exact <= magnitude < exact + nano
    assert (magnitude / nano).denominator == 1
    assert parsed.sign() == (0 if exact == 0 else -1 if sign == "-" else 1)


def test_canonical_function_is_what_str_uses() -> None:
    assert canonical(1536 * 2**20 * 10**9, BSI) == str(q("1.5Gi")) == "1536Mi"
