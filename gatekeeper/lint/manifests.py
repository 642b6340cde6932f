"""Lint rules for state manifests: LimitRanges, ResourceQuotas and ServiceAccounts that the API
server would refuse, or that cannot do what they appear to."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from gatekeeper.admission.state import JSONObject
from gatekeeper.backends.manifests import ManifestError, load_manifests, manifest_files
from gatekeeper.k8s.quantity import Quantity, QuantityError, exceeds_ratio, parse_json_quantity
from gatekeeper.lint.report import Finding, RuleInfo, Severity

E, W = Severity.ERROR, Severity.WARNING
LOAD_ERROR = RuleInfo("manifest-load-error", E, "gatekeeper refuses this manifest")
BAD_QUANTITY = RuleInfo("manifest-invalid-quantity", E, "a value that is not a Kubernetes quantity")
LIMIT_ORDER = RuleInfo(
    "limitrange-inconsistent", E, "LimitRange bounds out of order (min <= defaultRequest <= default <= max)"
)
LIMIT_RATIO = RuleInfo("limitrange-ratio", E, "defaults that break the LimitRange's own maxLimitRequestRatio")
UNKNOWN_RESOURCE = RuleInfo(
    "resourcequota-unknown-resource", W, "a ResourceQuota resource name no evaluator tracks"
)
SCOPES = RuleInfo("resourcequota-contradictory-scopes", W, "scopes that no pod can match at once")
MISSING_SECRET = RuleInfo(
    "serviceaccount-missing-secret", W, "a ServiceAccount names a Secret that is not there"
)
RULES = (LOAD_ERROR, BAD_QUANTITY, LIMIT_ORDER, LIMIT_RATIO, UNKNOWN_RESOURCE, SCOPES, MISSING_SECRET)

# (lower bound, upper bound) pairs Kubernetes' LimitRange validation insists on, in this order.
ORDER = (
    ("min", "max"),
    ("min", "defaultRequest"),
    ("defaultRequest", "max"),
    ("min", "default"),
    ("default", "max"),
    ("defaultRequest", "default"),
)
STANDARD_RESOURCES = frozenset(
    {
        "pods",
        "services",
        "services.loadbalancers",
        "services.nodeports",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "resourcequotas",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "requests.storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    }
)
RESOURCE_PATTERNS = (
    re.compile(r"^count/[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"),
    re.compile(r"^(requests\.)?hugepages-[0-9A-Za-z]+$"),
    re.compile(
        r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?\.storageclass\.storage\.k8s\.io/(requests\.storage|persistentvolumeclaims)$"
    ),
    re.compile(
        r"^requests\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?\.[a-z]+/[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
    ),
)
OPPOSITES = (("Terminating", "NotTerminating"), ("BestEffort", "NotBestEffort"))


def object_lines(text: str) -> dict[tuple[str, str, str], int]:
    """(kind, namespace, name) -> the 1-based line where that object starts in a YAML/JSON text."""
    lines: dict[tuple[str, str, str], int] = {}
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return lines
    for document in documents:
        for node in _object_nodes(document):
            fields = _scalars(node)
            key = (fields.get("kind", ""), fields.get("namespace", ""), fields.get("name", ""))
            lines.setdefault(key, node.start_mark.line + 1)
    return lines


def _object_nodes(node: yaml.Node | None) -> Iterator[yaml.MappingNode]:
    if not isinstance(node, yaml.MappingNode):
        return
    items = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    kind = items.get("kind")
    if isinstance(kind, yaml.ScalarNode) and kind.value == "List":
        listed = items.get("items")
        for item in listed.value if isinstance(listed, yaml.SequenceNode) else []:
            yield from _object_nodes(item)
    else:
        yield node


def _scalars(node: yaml.MappingNode) -> dict[str, str]:
    """kind, and metadata name and namespace, of an object node (scalars only)."""
    fields: dict[str, str] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value == "kind" and isinstance(value, yaml.ScalarNode):
            fields["kind"] = str(value.value)
        elif key.value == "metadata" and isinstance(value, yaml.MappingNode):
            for meta_key, meta_value in value.value:
                wanted = isinstance(meta_key, yaml.ScalarNode) and meta_key.value in ("name", "namespace")
                if wanted and isinstance(meta_value, yaml.ScalarNode):
                    fields[str(meta_key.value)] = str(meta_value.value)
    return fields


def lint_manifests(paths: Sequence[Path]) -> list[Finding]:
    findings: list[Finding] = []
    objects: list[tuple[str, JSONObject]] = []
    starts: dict[tuple[str, str, str, str], int] = {}
    try:
        files = manifest_files(paths)
    except ManifestError as exc:
        return [Finding(str(paths[0]) if paths else "-", 1, 1, LOAD_ERROR, str(exc))]
    for path in files:
        try:
            loaded = load_manifests([path])
        except ManifestError as exc:
            findings.append(Finding(str(path), exc.line or 1, 1, LOAD_ERROR, str(exc)))
            continue
        lines = object_lines(path.read_text(encoding="utf-8"))
        objects.extend((str(path), obj) for obj in loaded)
        starts.update({(str(path), *_key(obj)): lines.get(_key(obj), 1) for obj in loaded})
    secrets = {(_ns(o), _name(o)) for _, o in objects if o.get("kind") == "Secret"}
    for file, obj in objects:
        line = starts[(file, *_key(obj))]
        kind = obj.get("kind")
        if kind == "LimitRange":
            found = list(_limit_range(file, obj))
        elif kind == "ResourceQuota":
            found = list(_resource_quota(file, obj))
        elif kind == "ServiceAccount":
            found = list(_service_account(file, obj, secrets))
        else:
            found = []
        findings.extend(dataclasses.replace(f, line=line) for f in found)
    return findings


def _key(obj: JSONObject) -> tuple[str, str, str]:
    return str(obj.get("kind") or ""), _ns(obj), _name(obj)


def _ns(obj: JSONObject) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _name(obj: JSONObject) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _label(obj: JSONObject) -> str:
    return f"{obj.get('kind')} {_ns(obj)}/{_name(obj)}"


def _quantities(
    file: str, obj: JSONObject, values: Any, path: str
) -> tuple[dict[str, Quantity], list[Finding]]:
    parsed: dict[str, Quantity] = {}
    findings: list[Finding] = []
    for resource, value in (values or {}).items():
        try:
            parsed[resource] = parse_json_quantity(value)
        except QuantityError as exc:
            findings.append(Finding(file, 0, 1, BAD_QUANTITY, f"{_label(obj)}: {path}.{resource}: {exc}"))
    return parsed, findings


def _limit_range(file: str, obj: JSONObject) -> Iterator[Finding]:
    for index, item in enumerate((obj.get("spec") or {}).get("limits") or []):
        path = f"spec.limits[{index}]"
        bounds: dict[str, dict[str, Quantity]] = {}
        for field in ("min", "max", "default", "defaultRequest", "maxLimitRequestRatio"):
            bounds[field], problems = _quantities(file, obj, item.get(field), f"{path}.{field}")
            yield from problems
        yield from _order(file, obj, path, bounds)
        yield from _ratio(file, obj, path, bounds)


def _order(
    file: str, obj: JSONObject, path: str, bounds: dict[str, dict[str, Quantity]]
) -> Iterator[Finding]:
    for low, high in ORDER:
        for resource in sorted(bounds[low].keys() & bounds[high].keys()):
            if bounds[high][resource] < bounds[low][resource]:
                yield Finding(
                    file,
                    0,
                    1,
                    LIMIT_ORDER,
                    f"{_label(obj)}: {path}: {low} {resource} {bounds[low][resource]} is greater than "
                    f"{high} {resource} {bounds[high][resource]}; the API server refuses this LimitRange",
                    f"make {low} <= {high}",
                )


def _ratio(
    file: str, obj: JSONObject, path: str, bounds: dict[str, dict[str, Quantity]]
) -> Iterator[Finding]:
    for resource, ratio in sorted(bounds["maxLimitRequestRatio"].items()):
        limit, request = bounds["default"].get(resource), bounds["defaultRequest"].get(resource)
        if (
            limit is not None
            and request is not None
            and not request.is_zero()
            and exceeds_ratio(limit, request, ratio)
        ):
            yield Finding(
                file,
                0,
                1,
                LIMIT_RATIO,
                f"{_label(obj)}: {path}: default {resource} {limit} / defaultRequest {request} exceeds "
                f"maxLimitRequestRatio {ratio}: every pod that takes both defaults is refused",
                "raise defaultRequest, lower default, or raise the ratio",
            )


def _resource_quota(file: str, obj: JSONObject) -> Iterator[Finding]:
    spec = obj.get("spec") or {}
    for part, values in (
        ("spec.hard", spec.get("hard")),
        ("status.hard", (obj.get("status") or {}).get("hard")),
    ):
        parsed, problems = _quantities(file, obj, values, part)
        yield from problems
        for resource in sorted(parsed):
            if resource not in STANDARD_RESOURCES and not any(p.match(resource) for p in RESOURCE_PATTERNS):
                yield Finding(
                    file,
                    0,
                    1,
                    UNKNOWN_RESOURCE,
                    f"{_label(obj)}: {part}: {resource!r} is not a resource any quota evaluator tracks",
                    "check the spelling, e.g. requests.cpu, limits.memory, count/deployments.apps",
                )
    yield from _scopes(file, obj, spec)


def _scopes(file: str, obj: JSONObject, spec: dict[str, Any]) -> Iterator[Finding]:
    present = {s for s in spec.get("scopes") or [] if isinstance(s, str)}
    for expression in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        if isinstance(expression, dict) and expression.get("operator") == "Exists":
            present.add(str(expression.get("scopeName")))
    for a, b in OPPOSITES:
        if a in present and b in present:
            yield Finding(
                file,
                0,
                1,
                SCOPES,
                f"{_label(obj)}: scopes {a} and {b} together match no pod, so this quota never applies",
                "split it into two quotas, one per scope",
            )


def _service_account(file: str, obj: JSONObject, secrets: set[tuple[str, str]]) -> Iterator[Finding]:
    namespace = _ns(obj)
    for field in ("secrets", "imagePullSecrets"):
        for index, ref in enumerate(obj.get(field) or []):
            name = ref.get("name") if isinstance(ref, dict) else None
            if isinstance(name, str) and (namespace, name) not in secrets:
                yield Finding(
                    file,
                    0,
                    1,
                    MISSING_SECRET,
                    f"{_label(obj)}: {field}[{index}] names Secret {namespace}/{name}, "
                    "which is not among the linted manifests",
                    "add the Secret's manifest, or remove the reference",
                )
