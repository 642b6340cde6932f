"""ABAC policy files, loaded exactly as kube-apiserver's `--authorization-policy-file`.

Each line is decoded on its own (JSON, or YAML when it does not start with "{"), its format is
chosen from apiVersion/kind the way apimachinery's serializer chooses it, and it is converted to
one internal `Rule` (v0 defaults, "*" subject rewriting). The first bad line refuses the whole
file. tests/conformance/abac/SEMANTICS.md is the specification; section numbers below refer to it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import yaml

from gatekeeper.authn.user import AUTHENTICATED
from gatekeeper.authz.schema import field_types
from gatekeeper.errors import InvalidFile
from gatekeeper.k8s import yamltext

GROUP = "abac.authorization.kubernetes.io"
V0 = f"{GROUP}/v0"
V1BETA1 = f"{GROUP}/v1beta1"
INTERNAL = f"{GROUP}/__internal"
MAX_LINE_BYTES = 65536  # bufio.Scanner's MaxScanTokenSize: a line this long or longer is refused

# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip also trims \x1c-\x1f).
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


class Format(Enum):
    V0 = "v0"
    V1BETA1 = "v1beta1"
    INTERNAL = "__internal"


# JSON field names and types of each format's policy body (§2), from the schema; the internal
# type has Go field names (§1.8).
V0_FIELDS = field_types("v0")
V1BETA1_SPEC_FIELDS = field_types("v1beta1Spec")
INTERNAL_SPEC_FIELDS = field_types("internalSpec")


class Rule(NamedTuple):
    """One policy line after conversion to Kubernetes' internal abac.Policy.

    A NamedTuple rather than a frozen dataclass: equally immutable, and several times cheaper
    to build, which matters when a 100,000-line policy is (re)loaded.
    """

    user: str
    group: str
    readonly: bool
    api_group: str
    resource: str
    namespace: str
    path: str
    source: str  # "FILE:LINE", what a decision names
    position: int  # index in the file: the earliest matching rule is the one reported


class DecodedLine(NamedTuple):
    """A policy line decoded but not yet converted: what the linter inspects."""

    number: int
    format: Format
    value: dict[str, Any]  # the whole decoded object
    body: dict[str, Any]  # the fields the format reads (v0: the object; others: spec)
    via_yaml: bool
    versioned: bool  # apiVersion and kind were both given (a v0 line without them is "unversioned")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    rules: tuple[Rule, ...]
    unversioned_lines: int
    sha256: str


class PolicyError(InvalidFile):
    """A file Kubernetes refuses: `FILE:LINE: cause`, or `FILE: cause` with no line (too long)."""

    def __init__(self, name: str, line: int | None, cause: str) -> None:
        self.name = name
        self.line = line
        self.cause = cause
        where = f"{name}:{line}" if line is not None else name
        super().__init__(f"{where}: {cause}")


class LineError(InvalidFile):
    """Why one line cannot be decoded; the loader adds the file and line."""


def load_policy_file(path: Path, name: str | None = None) -> Policy:
    display = name or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(display, None, f"cannot read policy file: {exc.strerror}") from None
    return parse_policy(data, display)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large policy is built.

    A load creates hundreds of thousands of acyclic objects that all stay alive; the collector's
    passes over them during the load free nothing and cost about a third of the load time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_policy(data: bytes, name: str) -> Policy:
    with gc_paused():
        return _parse_policy(data, name)


def _parse_policy(data: bytes, name: str) -> Policy:
    rules: list[Rule] = []
    unversioned = 0
    number = 0
    prefix = f"{name}:"
    for lines in _line_chunks(data):
        for raw in lines:
            number += 1
            source = f"{prefix}{number}"
            rule = _plain_v1beta1(raw, source, len(rules)) if len(raw) < MAX_LINE_BYTES else None
            if rule is None:
                line = _scan_line(number, raw, name)
                if line is None:
                    continue
                if line.error is not None:
                    raise line.error
                assert line.decoded is not None
                rule = to_rule(line.decoded, source, len(rules))
                unversioned += not line.decoded.versioned
            rules.append(rule)
    return Policy(name, tuple(rules), unversioned, hashlib.sha256(data).hexdigest())


CHUNK_BYTES = 1 << 22


def _line_chunks(data: bytes) -> Iterator[list[bytes]]:
    """physical_lines(data), a few MiB at a time: a large file's lines are never all in memory at
    once, so their memory is reused for the next chunk instead of fragmenting the heap the rules
    live on (a 1,000,000-line file's lines alone are ~200 MB)."""
    start = 0
    while (cut := data.find(b"\n", start + CHUNK_BYTES)) >= 0:
        yield data[start:cut].split(b"\n")
        start = cut + 1
    yield physical_lines(data[start:])


_PLAIN_V1BETA1_KEYS = frozenset({"apiVersion", "kind", "spec"})
_PLAIN_SPEC_FIELDS = frozenset(V1BETA1_SPEC_FIELDS)
_new_rule = tuple.__new__
_intern = sys.intern  # rules share their names: a large policy names each user, group, resource often


def _plain_v1beta1(raw: bytes, source: str, index: int) -> Rule | None:
    """The rule of the most common line, `{"apiVersion":"...v1beta1","kind":"Policy","spec":{...}}`
    with only known, well-typed, non-null fields, decided without the general path's steps; None
    for any other line (which the general path then decides).

    Only a line that orjson parses (valid UTF-8 JSON; a trailing \r is JSON whitespace) into exactly
    these three keys, spelled exactly so, can take this path; the general path would decode it to
    the same object and convert it the same way (§1.7, §1.8, §3). One call per line, no others of
    our own: at a million lines each Python call is a tenth of a second."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict or value.keys() != _PLAIN_V1BETA1_KEYS:
        return None
    spec = value["spec"]
    if value["apiVersion"] != V1BETA1 or value["kind"] != "Policy" or type(spec) is not dict:
        return None
    if not spec.keys() <= _PLAIN_SPEC_FIELDS:
        return None
    get = spec.get
    user, group, readonly = get("user", ""), get("group", ""), get("readonly", False)
    api_group, resource = get("apiGroup", ""), get("resource", "")
    namespace, path = get("namespace", ""), get("nonResourcePath", "")
    if (
        type(user) is not str
        or type(group) is not str
        or type(readonly) is not bool
        or type(api_group) is not str
        or type(resource) is not str
        or type(namespace) is not str
        or type(path) is not str
    ):
        return None
    # Every key ends at a colon, so as many colons as keys means no key came twice; names with
    # colons in them (system:...) are counted exactly by _key_tokens.
    keys = 3 + len(spec)
    if raw.count(b":") != keys and _key_tokens(raw) != keys:
        return None
    if user == "*" or group == "*":
        user, group = "", AUTHENTICATED
    fields = (
        _intern(user), _intern(group), readonly, _intern(api_group), _intern(resource),
        _intern(namespace), _intern(path), source, index,
    )
    rule: Rule = _new_rule(Rule, fields)
    return rule


@dataclass(frozen=True, slots=True)
class SourceLine:
    """One policy line of a file: decoded, or with the error the loader reports for it."""

    number: int
    text: str
    decoded: DecodedLine | None
    error: PolicyError | None


def scan_lines(data: bytes, name: str) -> Iterator[SourceLine]:
    """Every policy line (blank and comment lines skipped), without stopping at a bad one."""
    for number, raw in enumerate(physical_lines(data), start=1):
        line = _scan_line(number, raw, name)
        if line is not None:
            yield line


def _scan_line(number: int, raw: bytes, name: str) -> SourceLine | None:
    """One physical line: decoded, or its error; None for a blank or comment line."""
    if len(raw) >= MAX_LINE_BYTES:
        limit = MAX_LINE_BYTES - 1
        cause = f"bufio.Scanner: token too long (line {number} is {len(raw)} bytes; the limit is {limit})"
        return SourceLine(number, "", None, PolicyError(name, None, cause))
    text = _content(raw).decode("utf-8", errors="replace")
    trimmed = text.strip(GO_SPACE)
    if not trimmed or trimmed.startswith("#"):
        return None
    try:
        return SourceLine(number, text, decode_line(text, number), None)
    except LineError as exc:
        return SourceLine(number, text, None, PolicyError(name, number, str(exc)))


def decode_lines(data: bytes, name: str) -> list[DecodedLine]:
    """Decode every policy line of a file, or raise PolicyError for the first bad one."""
    decoded: list[DecodedLine] = []
    for line in scan_lines(data, name):
        if line.error is not None:
            raise line.error
        assert line.decoded is not None
        decoded.append(line.decoded)
    return decoded


def physical_lines(data: bytes) -> list[bytes]:
    """Lines as bufio.Scanner holds them: split on \\n, each still with its trailing \\r, which
    counts toward the line limit (§1.2) and is dropped after the check (`_content`, §1.1)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _content(raw: bytes) -> bytes:
    return raw[:-1] if raw.endswith(b"\r") else raw


def decode_line(text: str, number: int) -> DecodedLine:
    via_yaml = not text.lstrip(GO_SPACE).startswith("{")
    value = _parse_yaml(text) if via_yaml else _parse_json(text)
    if value is None:
        value = {}  # JSON/YAML null decodes to the zero policy (§1.6)
    if not isinstance(value, dict):
        raise LineError(f"expected a policy object, got {_json_type(value)}")
    api_version, kind = _type_meta(value)
    fmt = _choose_format(api_version, kind)
    versioned = bool(api_version) and kind == "Policy"
    body = value if fmt is Format.V0 else _spec(value, fmt)
    _check_types(body, fmt)
    return DecodedLine(number, fmt, value, body, via_yaml, versioned)


def _parse_json(text: str) -> Any:
    try:
        value = orjson.loads(text)  # fast path, exact unless a key repeats
        if not repeats_a_key(text.encode(), value):
            return value
    except orjson.JSONDecodeError:
        pass  # decided by json below, with its message
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=GoObject.decode)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise LineError("invalid JSON: nested too deeply") from None


class GoObject(dict[str, Any]):
    """A JSON object as encoding/json decodes it into a struct, where a key may come more than once
    (§1.9): a later null leaves the earlier value (null only zeroes what is still unset), a later
    object merges into the earlier one, and otherwise the last value wins. `pairs` keeps every
    key and value in text order: Go reports a wrong type even when a later value is right, and
    matches apiVersion and kind case-insensitively in text order (§1.7)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.pairs = pairs

    @classmethod
    def decode(cls, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = cls(pairs)
        for key, value in pairs:
            if key in obj:
                earlier = obj[key]
                if value is None:
                    continue
                if isinstance(value, GoObject) and isinstance(earlier, GoObject):
                    value = cls.decode(earlier.pairs + value.pairs)
            obj[key] = value
        return obj


_KEY_TOKEN = re.compile(rb'"\s*:')  # ends every key; a string may hold one too, never fewer
_QUOTE_SPACE = re.compile(rb'"\s')


def repeats_a_key(raw: bytes, value: Any) -> bool:
    """Whether the JSON text `raw` (decoded to `value`) may give some object a key twice. Counts
    what ends a key in the text against the keys decoded: equal means no key came twice."""
    return _key_tokens(raw) != _keys(value)


def _key_tokens(raw: bytes) -> int:
    if _QUOTE_SPACE.search(raw) is None:
        return raw.count(b'":')  # the same count, where no quote is followed by whitespace
    return len(_KEY_TOKEN.findall(raw))


def _keys(value: Any) -> int:
    if type(value) is dict:
        count = len(value)
        for item in value.values():
            if type(item) is dict or type(item) is list:
                count += _keys(item)
        return count
    if type(value) is list:
        return sum(_keys(item) for item in value)
    return 0


def _occurrences(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every key and value of an object in text order (a repeated key once per time it appears)."""
    return obj.pairs if isinstance(obj, GoObject) else list(obj.items())


def _reject_constant(token: str) -> Any:
    raise json.JSONDecodeError(f"invalid character {token!r}", token, 0)


class _GoYAMLLoader(yaml.SafeLoader):
    """YAML 1.1 as sigs.k8s.io/yaml reads it: timestamps stay strings."""


_GoYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_yaml(text: str) -> Any:
    if text.strip(GO_SPACE) == "...":
        raise LineError("invalid YAML: a document end marker is not a policy")
    try:
        documents = list(yaml.load_all(text, Loader=_GoYAMLLoader))
    except yaml.YAMLError as exc:  # described without the snippet PyYAML quotes from the line
        raise LineError(f"invalid YAML: {yamltext.problem(exc)}") from None
    except RecursionError:
        raise LineError("invalid YAML: nested too deeply") from None
    value = documents[0] if documents else None
    if isinstance(value, dict):
        return {_yaml_key(k): v for k, v in value.items()}
    return value


def _yaml_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


_TYPE_META_KEYS: dict[str, str | None] = {}  # key -> "apiversion", "kind" or None, case-folded once


def _type_meta_key(key: str) -> str | None:
    candidate = key.casefold()
    folded = candidate if candidate in ("apiversion", "kind") else None
    if len(_TYPE_META_KEYS) < 65536:  # bounded: keys come from untrusted files
        _TYPE_META_KEYS[key] = folded
    return folded


def _type_meta(value: dict[str, Any]) -> tuple[str, str]:
    """apiVersion and kind, matched case-insensitively as encoding/json matches them (§1.7)."""
    found = {"apiversion": "", "kind": ""}
    cache = _TYPE_META_KEYS
    for key, item in _occurrences(value):
        folded = cache.get(key)
        if folded is None and key not in cache:
            folded = _type_meta_key(key)
        if folded is None or item is None:  # null leaves the value as it was
            continue
        if not isinstance(item, str):
            name = "apiVersion" if folded == "apiversion" else "kind"
            raise LineError(f"{name}: expected a string, got {_json_type(item)}")
        found[folded] = item
    api_version, kind = found["apiversion"], found["kind"]
    if api_version.count("/") > 1:
        raise LineError(f"unexpected GroupVersion string: {api_version}")
    return _group_version(api_version), kind


def _group_version(api_version: str) -> str:
    """ParseGroupVersion reads "/" as no version at all, and this group without a version as v0."""
    if api_version == "/":
        return ""
    return V0 if api_version == f"{GROUP}/" else api_version


def _choose_format(api_version: str, kind: str) -> Format:
    """Registered version and kind, else the unversioned (v0) path with its defaults (§1.8)."""
    registered = {V1BETA1: Format.V1BETA1, V0: Format.V0, INTERNAL: Format.INTERNAL}
    if kind == "Policy" and api_version in registered:
        return registered[api_version]
    if kind not in ("", "Policy"):
        version = api_version or V0
        raise LineError(f'no kind "{kind}" is registered for version "{version}"')
    if api_version in ("", V0):
        return Format.V0
    if api_version in registered:
        short = "v1beta1" if api_version == V1BETA1 else "abac"
        raise LineError(f"converting ({short}.Policy) to (v0.Policy): unknown conversion")
    raise LineError(f'no kind "Policy" is registered for version "{api_version}"')


def _spec(value: dict[str, Any], fmt: Format) -> dict[str, Any]:
    key = "spec" if fmt is Format.V1BETA1 else "Spec"
    for name, spec in _occurrences(value):
        if name == key and spec is not None and not isinstance(spec, dict):
            raise LineError(f"{key}: expected an object, got {_json_type(spec)}")
    spec = value.get(key)
    return spec if isinstance(spec, dict) else {}


def _check_types(body: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.V0:
        fields, prefix = V0_FIELDS, ""
    elif fmt is Format.V1BETA1:
        fields, prefix = V1BETA1_SPEC_FIELDS, "spec."
    else:
        fields, prefix = INTERNAL_SPEC_FIELDS, "Spec."
    for field, item in _occurrences(body):
        expected = fields.get(field)
        if expected is not None and item is not None and type(item) is not expected:
            wanted = "a boolean" if expected is bool else "a string"
            raise LineError(f"{prefix}{field}: expected {wanted}, got {_json_type(item)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    name = names.get(type(value), type(value).__name__)
    return f"{name} {json.dumps(value)[:40]}" if name in ("string", "number") else name


def to_rule(decoded: DecodedLine, source: str, index: int) -> Rule:
    body = decoded.body
    if decoded.format is Format.V0:
        return _from_v0(body, source, index)
    if decoded.format is Format.V1BETA1:
        return _from_v1beta1(body, source, index)
    return _interned(  # the internal version: Go field names, no defaults, no "*" rewriting
        user=body.get("User") or "",
        group=body.get("Group") or "",
        readonly=bool(body.get("Readonly")),
        api_group=body.get("APIGroup") or "",
        resource=body.get("Resource") or "",
        namespace=body.get("Namespace") or "",
        path=body.get("NonResourcePath") or "",
        source=source,
        position=index,
    )


def _from_v1beta1(spec: dict[str, Any], source: str, index: int) -> Rule:
    """Convert_v1beta1_Policy_To_abac_Policy: fields copied, then the "*" rewriting (§3.2)."""
    user, group = _rewrite_star(spec.get("user") or "", spec.get("group") or "")
    return _interned(
        user=user,
        group=group,
        readonly=bool(spec.get("readonly")),
        api_group=spec.get("apiGroup") or "",
        resource=spec.get("resource") or "",
        namespace=spec.get("namespace") or "",
        path=spec.get("nonResourcePath") or "",
        source=source,
        position=index,
    )


def _from_v0(body: dict[str, Any], source: str, index: int) -> Rule:
    """Convert_v0_Policy_To_abac_Policy, step by step (§3.1)."""
    user, group = body.get("user") or "", body.get("group") or ""
    namespace, resource = body.get("namespace") or "", body.get("resource") or ""
    if not user and not group:
        group = AUTHENTICATED
    user, group = _rewrite_star(user, group)
    return _interned(
        user=user,
        group=group,
        readonly=bool(body.get("readonly")),
        api_group="*",
        resource=resource or "*",
        namespace=namespace or "*",
        path="*" if not namespace and not resource else "",
        source=source,
        position=index,
    )


def _interned(
    *, user: str, group: str, readonly: bool, api_group: str, resource: str, namespace: str, path: str,
    source: str, position: int,
) -> Rule:
    """A Rule whose names are shared with every other rule naming the same (a large policy's
    memory is mostly its rules' strings otherwise)."""
    return Rule(
        _intern(user), _intern(group), readonly, _intern(api_group), _intern(resource),
        _intern(namespace), _intern(path), source, position,
    )


def _rewrite_star(user: str, group: str) -> tuple[str, str]:
    """A "*" user or group becomes group system:authenticated; the other subject is dropped."""
    if user == "*" or group == "*":
        return "", AUTHENTICATED
    return user, group
