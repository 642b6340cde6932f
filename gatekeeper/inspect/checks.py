"""The admission rules applied to objects that already exist; pure: objects in, violations out.

Admission judges a request once; an object admitted before a LimitRange, a quota or a service
account changed may break the rule now. Each check asks what the plugin would say if the object
were created again as it is now (Kubernetes' semantics, by the plugins' own code):

* LimitRanger: the namespace's Container defaults are merged first (as `admit` does), then every
  LimitRange's min/max/maxLimitRequestRatio is checked; one finding per LimitRange that refuses.
  PersistentVolumeClaims: their items' min/max on the requested storage. Objects being deleted
  are skipped, as LimitRanger skips them.
* ResourceQuota: usage is recounted from the objects by the quota evaluators (as the quota
  controller does); a recount above `hard` is an error, a `status.used` that differs is drift.
  Only resources whose objects the input holds are recounted (`covered`).
* NamespaceLifecycle: a pod in a namespace that is terminating, or that does not exist.
* ServiceAccount: the pod's service account must exist; when it enforces mountable secrets, the
  pod may reference only the secrets it lists. Mirror pods name no service account: skipped.

A check whose input is absent (no Namespace or ServiceAccount objects at all) is not run, and
says so in `notes`: absent from a dump is not the same as absent from the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatekeeper.admission.plugins.limit_ranger import (
    LimitRangeError,
    LimitRangeItem,
    aggregate,
    default_requirements,
    limit_range_items,
    merge_pod_resource_requirements,
    validate_pod,
    validate_pvc,
)
from gatekeeper.admission.plugins.namespace_lifecycle import TERMINATING
from gatekeeper.admission.plugins.service_account import (
    enforces_mountable_secrets,
    is_mirror_pod,
    unmountable_secret,
)
from gatekeeper.admission.podresources import PodResourceError
from gatekeeper.admission.quota.evaluators.base import Evaluator
from gatekeeper.admission.quota.quotas import Quota, parse_quota
from gatekeeper.admission.quota.reconcile import LiveObject, charge, covered_evaluators, live_object
from gatekeeper.admission.quota.resources import QuotaError, ResourceList, from_strings, pretty
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.k8s.objects import Pod, PodSpec, ServiceAccount
from gatekeeper.k8s.quantity import ZERO
from gatekeeper.lint.report import RuleInfo, Severity

JSONObject = dict[str, Any]

LIMIT_RANGE = RuleInfo(
    "limitrange-violation", Severity.ERROR, "a pod or claim is outside a LimitRange's min/max/ratio"
)
QUOTA_EXCEEDED = RuleInfo("quota-exceeded", Severity.ERROR, "a namespace's recounted usage exceeds a quota")
QUOTA_DRIFT = RuleInfo("quota-drift", Severity.WARNING, "a quota's status.used differs from a recount")
NAMESPACE_TERMINATING = RuleInfo(
    "namespace-terminating", Severity.WARNING, "a pod is in a namespace that is being terminated"
)
NAMESPACE_MISSING = RuleInfo(
    "namespace-missing", Severity.ERROR, "a pod is in a namespace that does not exist"
)
SERVICE_ACCOUNT_MISSING = RuleInfo(
    "serviceaccount-missing", Severity.ERROR, "a pod's service account does not exist"
)
SECRET_NOT_MOUNTABLE = RuleInfo(
    "secret-not-mountable",
    Severity.ERROR,
    "a pod references a secret its service account's enforce-mountable-secrets forbids",
)
MALFORMED = RuleInfo("malformed-object", Severity.ERROR, "an object the admission rules cannot read")
RULES = (
    LIMIT_RANGE,
    QUOTA_EXCEEDED,
    QUOTA_DRIFT,
    NAMESPACE_TERMINATING,
    NAMESPACE_MISSING,
    SERVICE_ACCOUNT_MISSING,
    SECRET_NOT_MOUNTABLE,
    MALFORMED,
)

# the admission plugin each rule is Kubernetes' rule of (PolicyReport's `policy`)
POLICY = {
    LIMIT_RANGE.id: "LimitRanger",
    QUOTA_EXCEEDED.id: "ResourceQuota",
    QUOTA_DRIFT.id: "ResourceQuota",
    NAMESPACE_TERMINATING.id: "NamespaceLifecycle",
    NAMESPACE_MISSING.id: "NamespaceLifecycle",
    SERVICE_ACCOUNT_MISSING.id: "ServiceAccount",
    SECRET_NOT_MOUNTABLE.id: "ServiceAccount",
    MALFORMED.id: "gatekeeper",
}

# The plugins read fields as the API server's validation guarantees them; a dump can hold anything.
# The exception's text is not shown: it may quote a value.
WRONG_TYPE = (AttributeError, TypeError, KeyError, IndexError)
UNREADABLE = "a field does not have the type the API server's validation guarantees"

CONTEXT_KINDS = ("Namespace", "LimitRange", "ResourceQuota", "ServiceAccount")
_RESOURCES = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts"}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        metadata = obj.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        return cls(
            str(obj.get("apiVersion") or ""),
            str(obj.get("kind") or ""),
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
            str(metadata.get("uid") or ""),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind.lower() or 'object'} {where}"


@dataclass(frozen=True, slots=True)
class Violation:
    rule: RuleInfo
    obj: ObjectRef
    message: str

    @property
    def policy(self) -> str:
        return POLICY[self.rule.id]


@dataclass
class QuotaState:
    """One quota, what its status says it uses, and the recount so far."""

    ref: ObjectRef
    quota: Quota
    recorded: ResourceList | None  # status.used; None when the quota has no status yet
    counted: ResourceList = field(default_factory=dict)


@dataclass
class Context:
    """What admission reads besides the object: built from the Namespace, LimitRange, ResourceQuota
    and ServiceAccount objects (small, held whole). `kinds` records every (group, resource) seen."""

    namespaces: dict[str, str] = field(default_factory=dict)  # name -> status.phase
    limit_ranges: dict[str, list[tuple[str, list[LimitRangeItem]]]] = field(default_factory=dict)
    quotas: dict[str, list[QuotaState]] = field(default_factory=dict)
    service_accounts: dict[str, dict[str, JSONObject]] = field(default_factory=dict)
    kinds: set[tuple[str, str]] = field(default_factory=set)
    violations: list[Violation] = field(default_factory=list)

    def add(self, obj: JSONObject, where: str) -> None:
        """Take in one object of the input; malformed context objects become violations."""
        try:
            live = live_object(obj, where)
        except QuotaError as exc:
            self.violations.append(Violation(MALFORMED, ObjectRef.of(obj), str(exc)))
            return
        self.kinds.add((live.group, live.resource))
        if live.group == "" and obj.get("kind") in CONTEXT_KINDS:
            self._add_context(obj, live)

    def _add_context(self, obj: JSONObject, live: LiveObject) -> None:
        ref = ObjectRef.of(obj)
        kind, ns = ref.kind, live.namespace
        try:
            if kind == "Namespace":
                status = obj.get("status")
                self.namespaces[ref.name] = str(status.get("phase") or "") if isinstance(status, dict) else ""
            elif kind == "LimitRange":
                self.limit_ranges.setdefault(ns, []).append((ref.name, limit_range_items(obj)))
            elif kind == "ResourceQuota":
                self.quotas.setdefault(ns, []).append(_quota_state(obj, ref))
            else:
                self.service_accounts.setdefault(ns, {})[ref.name] = _account(obj)
        except (LimitRangeError, QuotaError) as exc:
            self.violations.append(Violation(MALFORMED, ref, str(exc)))
        except WRONG_TYPE:
            self.violations.append(Violation(MALFORMED, ref, UNREADABLE))

    def has(self, kind: str) -> bool:
        return ("", _RESOURCES[kind]) in self.kinds


def _quota_state(obj: JSONObject, ref: ObjectRef) -> QuotaState:
    quota = parse_quota(obj)
    status = obj.get("status")
    used = status.get("used") if isinstance(status, dict) else None
    return QuotaState(ref, quota, from_strings(quota.seed) if used is not None else None)


def _account(obj: JSONObject) -> JSONObject:
    """What the ServiceAccount checks read of an account; the rest is not held."""
    metadata = obj.get("metadata") or {}
    return {
        "metadata": {"name": metadata.get("name"), "annotations": metadata.get("annotations") or {}},
        "secrets": obj.get("secrets") or [],
        "imagePullSecrets": obj.get("imagePullSecrets") or [],
    }


class Audit:
    """Every object of the input passes through `check` once, in any order, after the Context has
    seen them all; `finish` then gives the quota findings."""

    def __init__(self, context: Context, covered: Iterable[tuple[str, str]]) -> None:
        self.context = context
        self.covered = covered_evaluators(covered)
        self.objects = 0
        self.notes = _notes(context)
        for states in context.quotas.values():
            for state in states:
                state.counted = _zero_tally(state.quota, self.covered.values())

    def check(self, obj: JSONObject, where: str) -> list[Violation]:
        self.objects += 1
        try:
            live = live_object(obj, where)
        except QuotaError:
            return []  # a dump's: named in pass one; an API server's objects always have these
        try:
            violations = self._count(live)
            if live.group == "" and live.resource == "pods":
                violations += check_pod(self.context, obj)
            elif live.group == "" and live.resource == "persistentvolumeclaims":
                violations += check_pvc(self.context, obj)
        except WRONG_TYPE:
            return [Violation(MALFORMED, ObjectRef.of(obj), UNREADABLE)]
        return violations

    def _count(self, live: LiveObject) -> list[Violation]:
        evaluator = self.covered.get((live.group, live.resource))
        states = self.context.quotas.get(live.namespace, [])
        if evaluator is None or not states:
            return []
        try:
            for state in states:
                state.counted = charge(state.counted, state.quota, evaluator, live)
        except (QuotaError, PodResourceError) as exc:
            return [Violation(MALFORMED, ObjectRef.of(live.body), f"cannot count its quota usage: {exc}")]
        return []

    def finish(self) -> list[Violation]:
        violations = list(self.context.violations)
        for ns in sorted(self.context.quotas):
            for state in self.context.quotas[ns]:
                violations += quota_violations(state)
        return violations


def _notes(context: Context) -> list[str]:
    notes = []
    if not context.has("Namespace"):
        notes.append("the input holds no Namespace objects: missing and terminating namespaces not checked")
    if not context.has("ServiceAccount"):
        notes.append("the input holds no ServiceAccount objects: pods' service accounts not checked")
    return notes


def _zero_tally(quota: Quota, evaluators: Iterable[Evaluator]) -> ResourceList:
    """Zero of every hard resource some covered evaluator measures: those are the recounted ones."""
    return {name: ZERO for evaluator in evaluators for name in evaluator.matching_resources(quota.hard)}


# -- pods ---------------------------------------------------------------------------------------


def check_pod(context: Context, pod: JSONObject) -> list[Violation]:
    ref = ObjectRef.of(pod)
    violations = _namespace_violations(context, ref)
    if violations and violations[0].rule is NAMESPACE_MISSING:
        return violations
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return violations  # on its way out: LimitRanger and ServiceAccount no longer apply
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [*violations, Violation(MALFORMED, ref, "spec: expected an object")]
    violations += limit_range_violations(context.limit_ranges.get(ref.namespace, []), pod, ref)
    if context.has("ServiceAccount"):
        try:
            view = Pod.decode(pod)
        except InvalidObject as exc:
            return [*violations, Violation(MALFORMED, ref, str(exc))]
        if not is_mirror_pod(view.annotations):
            accounts = context.service_accounts.get(ref.namespace, {})
            violations += service_account_violations(accounts, spec, view.spec, ref)
    return violations


def _namespace_violations(context: Context, ref: ObjectRef) -> list[Violation]:
    if not context.has("Namespace"):
        return []
    phase = context.namespaces.get(ref.namespace)
    if phase is None:
        return [Violation(NAMESPACE_MISSING, ref, f'namespaces "{ref.namespace}" not found')]
    if phase == TERMINATING:
        message = f"namespace {ref.namespace} is being terminated; a new pod like this one would be refused"
        return [Violation(NAMESPACE_TERMINATING, ref, message)]
    return []


def limit_range_violations(
    limit_ranges: list[tuple[str, list[LimitRangeItem]]], pod: JSONObject, ref: ObjectRef
) -> list[Violation]:
    """What LimitRanger would refuse if the pod were created now: defaults merged, then each range."""
    if not limit_ranges:
        return []
    try:
        defaulted = _defaulted(pod, [items for _name, items in limit_ranges])
        results = [(name, aggregate(validate_pod(items, defaulted, None))) for name, items in limit_ranges]
    except PodResourceError as exc:
        return [Violation(MALFORMED, ref, str(exc))]
    return _refusals(ref, results)


def check_pvc(context: Context, pvc: JSONObject) -> list[Violation]:
    """PersistentVolumeClaim items' min/max on spec.resources.requests, as on a create."""
    ref = ObjectRef.of(pvc)
    limit_ranges = context.limit_ranges.get(ref.namespace, [])
    if not limit_ranges or (pvc.get("metadata") or {}).get("deletionTimestamp"):
        return []
    try:
        results = [(name, aggregate(validate_pvc(items, pvc, None))) for name, items in limit_ranges]
    except PodResourceError as exc:
        return [Violation(MALFORMED, ref, str(exc))]
    return _refusals(ref, results)


def _refusals(ref: ObjectRef, results: list[tuple[str, str | None]]) -> list[Violation]:
    """One finding per LimitRange whose check refused, named by the range."""
    return [
        Violation(LIMIT_RANGE, ref, f"limitrange {name}: {message}")
        for name, message in results
        if message is not None
    ]


def _defaulted(pod: JSONObject, ranges: list[list[LimitRangeItem]]) -> JSONObject:
    """A copy of what LimitRanger reads of the pod, with every range's defaults merged in."""
    spec = dict(pod.get("spec") or {})
    for field_name in ("containers", "initContainers"):
        listed = spec.get(field_name)
        if isinstance(listed, list):
            spec[field_name] = [_container_copy(c) for c in listed]
    copy: JSONObject = {"metadata": {}, "spec": spec}
    for items in ranges:
        merge_pod_resource_requirements(copy, *default_requirements(items))
    return copy


def _container_copy(container: object) -> object:
    if not isinstance(container, dict):
        return container
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return dict(container)
    copied = {key: dict(value) if isinstance(value, dict) else value for key, value in resources.items()}
    return {**container, "resources": copied}


def service_account_violations(
    accounts: Mapping[str, JSONObject], spec: JSONObject, pod_spec: PodSpec, ref: ObjectRef
) -> list[Violation]:
    name = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if not name:
        return [
            Violation(
                SERVICE_ACCOUNT_MISSING,
                ref,
                f"no service account specified for pod {ref.namespace}/{ref.name}",
            )
        ]
    account = accounts.get(str(name))
    if account is None:
        message = f'service account {ref.namespace}/{name} not found: serviceaccount "{name}" not found'
        return [Violation(SERVICE_ACCOUNT_MISSING, ref, message)]
    try:
        view = ServiceAccount.decode(account)
    except InvalidObject as exc:
        return [Violation(MALFORMED, ref, str(exc))]
    if not enforces_mountable_secrets(view):
        return []
    problem = unmountable_secret(view, pod_spec)
    return [Violation(SECRET_NOT_MOUNTABLE, ref, problem)] if problem else []


# -- quotas -------------------------------------------------------------------------------------


def quota_violations(state: QuotaState) -> list[Violation]:
    hard, counted = state.quota.hard, state.counted
    violations = []
    over = {name: quantity for name, quantity in counted.items() if name in hard and quantity > hard[name]}
    if over:
        limits = {name: hard[name] for name in over}
        message = f"recounted usage {pretty(over)} exceeds hard {pretty(limits)}"
        violations.append(Violation(QUOTA_EXCEEDED, state.ref, message))
    if state.recorded is not None:
        drifted = sorted(name for name in counted if state.recorded.get(name) != counted[name])
        if drifted:
            parts = [
                f"{name} recorded {_shown(state.recorded.get(name))}, counted {counted[name]}"
                for name in drifted
            ]
            violations.append(Violation(QUOTA_DRIFT, state.ref, "status.used drifted: " + "; ".join(parts)))
    return violations


def _shown(quantity: object) -> str:
    return "nothing" if quantity is None else str(quantity)
