"""Loading policy files: formats, conversions and the errors a person sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.authn.user import AUTHENTICATED
from gatekeeper.authz.policy import PolicyError, load_policy_file, parse_policy

V1BETA1 = '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":%s}'


def _rule(line: str):  # type: ignore[no-untyped-def]
    (rule,) = parse_policy(line.encode(), "p").rules
    return rule


def test_v0_defaults_and_star_rewriting() -> None:
    rule = _rule('{"user":"*","group":"admins","resource":"pods"}')
    assert (rule.user, rule.group, rule.namespace, rule.resource, rule.api_group, rule.path) == (
        "",
        AUTHENTICATED,
        "*",
        "pods",
        "*",
        "",
    )
    empty = _rule("{}")
    assert (empty.group, empty.namespace, empty.resource, empty.path) == (AUTHENTICATED, "*", "*", "*")


def test_v1beta1_unset_fields_are_not_wildcards() -> None:
    rule = _rule(V1BETA1 % '{"user":"alice","resource":"pods"}')
    assert (rule.namespace, rule.api_group, rule.path) == ("", "", "")


def test_crlf_and_physical_line_numbers() -> None:
    data = b'# c\r\n\r\n{"user":"a"}\r\n{"user":"b"}'
    policy = parse_policy(data, "p")
    assert [r.source for r in policy.rules] == ["p:3", "p:4"]


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "abac.jsonl"
    path.write_text('{"user":"alice"}\n' + V1BETA1 % '{"user":"bob","namespace":true}' + "\n")
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == f"{path}:2: spec.namespace: expected a string, got boolean"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file: No such file or directory"):
        load_policy_file(tmp_path / "missing.jsonl")


def test_yaml_line_with_a_date_keeps_it_a_string() -> None:
    assert _rule("user: 2001-12-14").user == "2001-12-14"


def test_a_65535_byte_line_is_fine_and_65536_is_not() -> None:
    pad = 65535 - len('{"user":"alice","x":""}')
    ok = ('{"user":"alice","x":"' + "a" * pad + '"}').encode()
    assert len(ok) == 65535
    assert parse_policy(ok, "p").rules[0].user == "alice"
    with pytest.raises(PolicyError) as err:
        parse_policy(ok[:-2] + b'a"}', "p")
    assert err.value.line is None and "token too long" in str(err.value)


@pytest.mark.parametrize(
    "line",
    [b"a: " + b"[" * 30000 + b"]" * 30000, b'{"a":' * 10000 + b"1" + b"}" * 10000],
    ids=["yaml-30000-deep", "json-10000-deep"],
)
def test_deeply_nested_lines_are_refused_with_a_clear_error(line: bytes) -> None:
    """Deliberately stricter than Go (which accepts JSON nesting to depth 10,000 and would turn
    this garbled line into an everyone-may-do-everything rule): refused, never a crash."""
    with pytest.raises(PolicyError, match=r"p:1: invalid (JSON|YAML): nested too deeply"):
        parse_policy(line, "p")


# A key given twice: decoded as Go's encoding/json decodes into a struct (checked against a
# compiled copy of Kubernetes' loader; SEMANTICS.md §1.9 says only "the last one wins").


def test_a_repeated_key_set_to_null_keeps_the_earlier_value() -> None:
    """Read as "null zeroes it", this line would grant every authenticated user."""
    rule = _rule('{"user":"alice","user":null}')
    assert (rule.user, rule.group) == ("alice", "")
    assert _rule('{"user":"alice","readonly":true,"readonly":null}').readonly is True
    spec = '{"user":"alice","namespace":"*","resource":"*"}'
    assert _rule((V1BETA1 % spec)[:-1] + ',"spec":null}').user == "alice"
    assert _rule(V1BETA1 % '{"user":"alice","user":"bob"}').user == "bob"  # otherwise the last one wins


def test_a_repeated_spec_object_merges_into_the_earlier_one() -> None:
    rule = _rule((V1BETA1 % '{"user":"alice","namespace":"*"}')[:-1] + ',"spec":{"readonly":true}}')
    assert (rule.user, rule.namespace, rule.readonly) == ("alice", "*", True)


@pytest.mark.parametrize("line", ['{"user":5,"user":"alice"}', '{"readonly":"true","readonly":true}'])
def test_a_wrong_type_is_an_error_even_when_a_later_value_is_right(line: str) -> None:
    with pytest.raises(PolicyError, match=r"^p:1: (user|readonly): expected"):
        parse_policy(line.encode(), "p")


def test_apiversion_and_kind_spelled_twice_take_the_last_in_the_line() -> None:
    with pytest.raises(PolicyError, match='no kind "Foo" is registered'):
        parse_policy(b'{"kind":"Policy","KIND":"Policy","kind":"Foo","user":"alice"}', "p")
    assert _rule('{"kind":"Policy","kind":null,"user":"alice"}').user == "alice"


@pytest.mark.parametrize("version", ["/", "abac.authorization.kubernetes.io/"])
def test_an_apiversion_without_a_version_is_the_legacy_format(version: str) -> None:
    assert _rule(f'{{"apiVersion":"{version}","kind":"Policy","user":"alice"}}').user == "alice"


def test_the_line_limit_counts_the_carriage_return_of_a_crlf_line() -> None:
    line = b'{"user":"alice","x":"' + b"a" * (65535 - 23) + b'"}'
    assert len(line) == 65535
    assert parse_policy(line + b"\n", "p").rules
    for ending in (b"\r\n", b"\r"):
        with pytest.raises(PolicyError, match=r"^p: bufio\.Scanner: token too long"):
            parse_policy(line + ending, "p")


def test_a_file_larger_than_a_chunk_keeps_every_line_and_its_number() -> None:
    """Lines are split CHUNK_BYTES at a time: none is lost or split at a boundary, none renumbered."""
    from gatekeeper.authz.policy import CHUNK_BYTES

    line = '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"user":"u%d"}}\n'
    count = CHUNK_BYTES // len(line % 0) * 2 + 7  # a little over two chunks
    text = "".join(line % i for i in range(count))
    policy = parse_policy(text.encode(), "big.jsonl")
    assert [r.user for r in policy.rules] == [f"u{i}" for i in range(count)]
    assert policy.rules[-1].source == f"big.jsonl:{count}"
    with pytest.raises(PolicyError) as refused:
        parse_policy((text + '{"user": 1}\n').encode(), "big.jsonl")
    assert str(refused.value).startswith(f"big.jsonl:{count + 1}: user: expected a string")
