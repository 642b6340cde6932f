"""ResourceQuota: charge each request's usage to the namespace's quotas, or refuse it (validating phase).

The decision is Kubernetes' (gatekeeper/admission/quota/check.py); the charge goes through the store's quota
ledger, atomically and once per request uid. dryRun requests are checked, never charged.

A DELETE gives nothing back, as in Kubernetes: admitting a delete does not end the object (a pod
runs on through its grace period, and storage or a later webhook can still refuse the delete).
Usage comes back when the objects are really gone: in a live cluster the resourcequota controller
recounts it; standalone, `gatekeeper quota reconcile` recounts it from the live objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import ClassVar

import orjson

from gatekeeper.admission.errors import AdmissionDenied, bad_request, forbidden, internal, object_name
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, PluginOptions, Warnings
from gatekeeper.admission.quota.check import QuotaRefusal, charge, plan, seeds
from gatekeeper.admission.quota.evaluators.base import Evaluator
from gatekeeper.admission.quota.evaluators.registry import evaluator_for
from gatekeeper.admission.quota.ledger import Applied, Outcome, Refused, RequestKey
from gatekeeper.admission.quota.quotas import Quota, parse_quota
from gatekeeper.admission.quota.resources import QuotaError
from gatekeeper.admission.quota_usage import namespace_quotas
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store


class ResourceQuota:
    name: ClassVar[str] = "ResourceQuota"

    def __init__(self, options: PluginOptions = DEFAULT_OPTIONS) -> None:
        pass  # nothing to set: this plugin reads only the request and the store

    def handles(self, request: AdmissionRequest) -> bool:
        if not request.namespace or _is_namespace_creation(request):
            return False
        evaluator = evaluator_for(request.resource.group, request.resource.resource)
        try:
            return evaluator is not None and evaluator.handles(request)
        except QuotaError as exc:  # an UPDATE's old or new object the evaluator cannot read
            raise bad_request(f"cannot measure quota usage: {exc}") from None

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        evaluator = evaluator_for(request.resource.group, request.resource.resource)
        if evaluator is None:
            return None
        try:
            quotas = namespace_quotas(store, request.namespace)
        except QuotaError as exc:
            raise internal(f"cannot read the namespace's quotas: {exc}") from None
        try:
            if obj is None:
                raise bad_request(f"{request.operation} request carries no object")
            if quotas:
                _charge(request, evaluator, obj, quotas, store)
            if _creates_quota(request) and not store.quota_ledger.live:
                _start_quota(request, obj, quotas, store)
        except QuotaRefusal as refusal:
            raise forbidden(request, str(refusal)) from None
        except ValueError as exc:  # QuotaError, PodResourceError, QuantityError: a malformed object
            raise bad_request(f"cannot measure quota usage: {exc}") from None
        return None


def _charge(
    request: AdmissionRequest, evaluator: Evaluator, obj: JSONObject, quotas: list[Quota], store: Store
) -> None:
    ledger, starting = store.quota_ledger, seeds(quotas)
    the_plan = plan(request, evaluator, obj, quotas, ledger.usage(request.namespace, starting))
    if not the_plan.requested:
        return
    if request.dry_run:
        checked = charge(the_plan, ledger.usage(request.namespace, starting))
        if isinstance(checked, Refused):
            raise QuotaRefusal(checked.message)
        return
    old = request.old_object if request.operation == UPDATE and request.old_object is not None else {}
    key = request_key(request, "charge", {"new": the_plan.usage, "old": evaluator.usage(old) if old else {}})
    outcome = ledger.apply(request.namespace, key, starting, lambda usage: charge(the_plan, usage))
    _raise_unless_applied(outcome)


def _start_quota(request: AdmissionRequest, obj: JSONObject, quotas: list[Quota], store: Store) -> None:
    """A ResourceQuota created now starts from its own status.used, not from a namesake's old usage.

    A create of a name that exists will fail in storage (AlreadyExists), so it must not touch the
    live quota's usage."""
    metadata = {**(obj.get("metadata") or {}), "namespace": request.namespace, "name": object_name(request)}
    created = parse_quota({**obj, "metadata": metadata})
    if request.dry_run or created.name in {quota.name for quota in quotas}:
        return
    key = request_key(request, "start", {"seed": created.seed})
    outcome = store.quota_ledger.apply(
        request.namespace, key, seeds(quotas), lambda _usage: {created.name: created.seed}
    )
    _raise_unless_applied(outcome)


def _raise_unless_applied(outcome: Outcome) -> None:
    if outcome.applied is Applied.REFUSED:
        raise QuotaRefusal(outcome.message)
    if outcome.applied is Applied.CONFLICT:
        raise AdmissionDenied(409, "Conflict", outcome.message)


def request_key(
    request: AdmissionRequest, action: str, usage: Mapping[str, Mapping[str, object]]
) -> RequestKey:
    """The uid under which this request changes the ledger, and a fingerprint of the request.

    Each action of a request (charge, release, start a quota) is applied once per uid. The
    fingerprint (what the object consumes, not the whole object: a retried create may come back
    with a new generated volume name) lets a true retry through and stops a reused uid from
    riding on an earlier charge.
    """
    if not request.uid.strip():
        raise bad_request("request.uid: must not be empty (quota is charged once per request uid)")
    described = {
        "action": action,
        "namespace": request.namespace,
        "resource": [request.resource.group, request.resource.resource, request.sub_resource],
        "name": object_name(request),
        "usage": {part: {name: str(q) for name, q in values.items()} for part, values in usage.items()},
    }
    digest = hashlib.sha256(orjson.dumps(described, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return RequestKey(request.uid if action in ("charge", "release") else f"{request.uid}/{action}", digest)


def _creates_quota(request: AdmissionRequest) -> bool:
    return request.operation == CREATE and request.is_core("resourcequotas") and not request.sub_resource


def _is_namespace_creation(request: AdmissionRequest) -> bool:
    return request.operation == CREATE and request.kind.group == "" and request.kind.kind == "Namespace"
