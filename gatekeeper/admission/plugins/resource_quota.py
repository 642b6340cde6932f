"""ResourceQuota: charge each request's usage to the namespace's quotas, or refuse it (validating phase).

The decision is Kubernetes' (gatekeeper/quota/check.py); the charge goes through the store's quota
ledger, atomically and once per request uid. dryRun requests are checked, never charged. DELETEs
give the old object's usage back, because gatekeeper is its own quota controller.
"""

from __future__ import annotations

from typing import ClassVar

from gatekeeper.admission.errors import bad_request, forbidden, internal
from gatekeeper.admission.plugin import Warnings
from gatekeeper.admission.request import CREATE, DELETE, AdmissionRequest, JSONObject
from gatekeeper.quota.check import Plan, QuotaRefusal, charge, plan, release, releasing, seeds
from gatekeeper.quota.evaluators.base import Evaluator
from gatekeeper.quota.evaluators.registry import evaluator_for
from gatekeeper.quota.ledger import Applied, Refused
from gatekeeper.quota.quotas import Quota
from gatekeeper.quota.resources import QuotaError
from gatekeeper.quota.status import namespace_quotas
from gatekeeper.store.base import Store

NO_OLD_OBJECT = "quota usage was not given back: the DELETE request carries no oldObject"


class ResourceQuota:
    name: ClassVar[str] = "ResourceQuota"

    def handles(self, request: AdmissionRequest) -> bool:
        if not request.namespace or _is_namespace_creation(request):
            return False
        evaluator = evaluator_for(request.resource.group, request.resource.resource)
        return evaluator is not None and (evaluator.handles(request) or evaluator.releases(request))

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        evaluator = evaluator_for(request.resource.group, request.resource.resource)
        if evaluator is None:
            return None
        try:
            quotas = namespace_quotas(store, request.namespace)
        except QuotaError as exc:
            raise internal(f"cannot read the namespace's quotas: {exc}") from None
        if not quotas:
            return None
        try:
            if request.operation == DELETE:
                return _release(request, evaluator, quotas, store)
            if obj is None:
                raise bad_request(f"{request.operation} request carries no object")
            _charge(request, evaluator, obj, quotas, store)
        except QuotaRefusal as refusal:
            raise forbidden(request, str(refusal)) from None
        except ValueError as exc:  # QuotaError, PodResourceError, QuantityError: a malformed object
            raise bad_request(f"cannot measure quota usage: {exc}") from None
        return None


def _charge(request: AdmissionRequest, evaluator: Evaluator, obj: JSONObject, quotas: list[Quota],
            store: Store) -> None:
    ledger, starting = store.quota_ledger, seeds(quotas)
    the_plan = plan(request, evaluator, obj, quotas, ledger.usage(request.namespace, starting))
    if not the_plan.requested:
        return
    if request.dry_run:
        checked = charge(the_plan, ledger.usage(request.namespace, starting))
        if isinstance(checked, Refused):
            raise QuotaRefusal(checked.message)
        return
    outcome = ledger.apply(request.namespace, request.uid, starting, lambda usage: charge(the_plan, usage))
    if outcome.applied is Applied.REFUSED:
        raise QuotaRefusal(outcome.message)


def _release(request: AdmissionRequest, evaluator: Evaluator, quotas: list[Quota], store: Store) -> Warnings:
    if request.dry_run or not evaluator.releases(request):
        return None
    if request.old_object is None:
        return [NO_OLD_OBJECT]
    the_plan: Plan = releasing(evaluator, quotas, request.old_object)
    if the_plan.requested:
        store.quota_ledger.apply(request.namespace, request.uid, seeds(quotas),
                                 lambda usage: release(the_plan, usage))
    return None


def _is_namespace_creation(request: AdmissionRequest) -> bool:
    return request.operation == CREATE and request.kind.group == "" and request.kind.kind == "Namespace"
