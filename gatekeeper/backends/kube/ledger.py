"""Quota usage in a live cluster: the ResourceQuota objects' own `status.used`, as Kubernetes keeps it.

A charge writes the quota's status through the API with the object's resourceVersion, so the API
server refuses it (409 Conflict) if anyone else changed the quota in between: a compare-and-swap,
as kube-apiserver's own quota admission does. Nothing is ever given back here: the cluster's
resourcequota controller recounts usage when objects are really gone.

The charges of one namespace that arrive together are settled as one batch (quota/batches.py),
as kube-apiserver's quota evaluator batches its waiters: each is decided in turn on the usage the
ones before it left, and every quota that changed is written once. On a conflict only the quotas
whose write failed are read again and decided again, for every charge of the batch; quotas
already written keep their charge (resourcequota/controller.go, checkQuotas). A request uid is
charged once per process (a reinvoked or retried review is not charged twice by one replica).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote

from gatekeeper.admission.quota.batches import Charge, Turns, charge_in_turn, record_waits
from gatekeeper.admission.quota.ledger import (
    REMEMBER_REQUESTS_SECONDS,
    Applied,
    Change,
    NamespaceUsage,
    Outcome,
    Refused,
    RequestKey,
    Used,
    forget_before,
    ignore_wait,
    replay,
)
from gatekeeper.admission.quota.resources import QuotaError, parse_list, to_strings
from gatekeeper.admission.state import JSONObject
from gatekeeper.backends.kube.client import ApiError, KubeClient, api_error
from gatekeeper.backends.kube.reflector import Reflector

MAX_ATTEMPTS = 5  # kube-apiserver's quota evaluator retries 3 times; a few more for busy namespaces
MAX_BATCH = 64
CONFLICT, NOT_FOUND = 409, 404


class ResourceQuotaStatusLedger:
    live = True

    def __init__(self, client: KubeClient, quotas: Reflector) -> None:
        self._client = client
        self._quotas = quotas
        self._turns: Turns[Charge] = Turns(self._settle_all, MAX_BATCH)
        self.lock_wait: Callable[[float], None] = ignore_wait
        self._lock = threading.Lock()
        self._applied: dict[str, tuple[str, float]] = {}  # uid -> (fingerprint, when)
        self.conflicts = 0  # 409s met

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        """The seeds are the watched objects' status.used: in a live cluster they are the usage."""
        return {name: dict(seed) for name, seed in seeds.items()}

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        return charge_in_turn(self._turns, namespace, Charge(request, seeds, change), ApiError)

    def _settle_all(self, namespace: str, charges: list[Charge]) -> None:
        record_waits(charges, self.lock_wait)
        firsts: dict[str, Charge] = {}
        for charge in charges:
            firsts.setdefault(charge.request.uid, charge)
        try:
            self._settle(namespace, [c for c in firsts.values() if not self._replayed(c)])
        except Exception as exc:  # the API server unreachable, say: every undecided charge fails
            for charge in firsts.values():
                if charge.outcome is None and charge.error is None:
                    charge.error = (
                        exc if isinstance(exc, ApiError) else ApiError(f"{type(exc).__name__}: {exc}")
                    )
        for charge in charges:  # the same uid twice in one batch: the second is a retry of the first
            first = firsts[charge.request.uid]
            if charge is not first:
                charge.outcome, charge.error = _as_retry_of(first, charge), first.error

    def _replayed(self, charge: Charge) -> bool:
        with self._lock:
            seen = self._applied.get(charge.request.uid)
        if seen is not None:
            charge.outcome = replay(charge.request, seen[0])
        return seen is not None

    def _settle(self, namespace: str, charges: list[Charge]) -> None:
        names = sorted({name for charge in charges for name in charge.seeds})
        current: dict[str, JSONObject] = {}
        for name in names:  # a quota the live lookup found may not have reached the watch yet
            obj = self._quotas.get(namespace, name) or self._read(namespace, name)
            if obj is not None:
                current[name] = obj
        checking = set(current)
        for _attempt in range(MAX_ATTEMPTS):
            before = {name: _used(current[name]) for name in checking}
            after = self._decide(charges, before)
            changed = {name for name in checking if after[name] != before[name]}
            failed = [name for name in sorted(changed) if not self._write(current[name], after[name])]
            if not failed:
                self._accept(charges)
                return
            self.conflicts += len(failed)
            checking = set()
            for name in failed:
                fresh = self._read(namespace, name)
                if fresh is None:  # a quota deleted meanwhile limits nothing
                    continue
                if _hard(fresh) != _hard(current[name]):
                    raise ApiError(
                        f"resourcequota {namespace}/{name} changed its limits while charging; try again"
                    )
                current[name] = fresh
                checking.add(name)
        for charge in charges:
            if charge.outcome is None and charge.error is None:
                charge.error = ApiError(
                    f"resourcequotas in {namespace}: conflicting after {MAX_ATTEMPTS} writes"
                )

    @staticmethod
    def _decide(charges: list[Charge], usage: dict[str, Used]) -> dict[str, Used]:
        """Each undecided charge in turn, on the quotas being checked; a refusal is final. A charge
        whose `change` raises gets the exception (a bug is not the API server's outage)."""
        usage = dict(usage)
        for charge in charges:
            if charge.outcome is not None or charge.error is not None:
                continue
            try:
                result = charge.change({name: usage[name] for name in charge.seeds if name in usage})
            except Exception as exc:
                charge.error = exc
                continue
            if isinstance(result, Refused):
                charge.outcome = Outcome(Applied.REFUSED, result.message)
                continue
            usage.update({name: used for name, used in result.items() if name in usage})
        return usage

    def _accept(self, charges: list[Charge]) -> None:
        now = time.time()
        with self._lock:
            for charge in charges:
                if charge.outcome is None and charge.error is None:
                    charge.outcome = Outcome(Applied.CHANGED)
                    self._applied[charge.request.uid] = (charge.request.fingerprint, now)
            forget_before(self._applied, now - REMEMBER_REQUESTS_SECONDS)

    def _write(self, quota: JSONObject, used: Used) -> bool:
        """PUT the status with the quota's resourceVersion; False on a conflict (someone else won)."""
        updated = copy.deepcopy(quota)
        updated.setdefault("status", {})["used"] = dict(used)
        path = _status_path(quota)
        response = self._client.request("PUT", path, body=updated)
        if response.status == CONFLICT:
            return False
        if response.status == NOT_FOUND:
            self._quotas.forget(namespace_of(quota), quota["metadata"]["name"])
            return True  # gone: a deleted quota limits nothing
        if response.status != 200:
            raise api_error("PUT", path, response.status, response.body)
        self._quotas.observe(response.body)
        return True

    def _read(self, namespace: str, name: str) -> JSONObject | None:
        path = f"/api/v1/namespaces/{quote(namespace)}/resourcequotas/{quote(name)}"
        response = self._client.request("GET", path)
        if response.status == NOT_FOUND:
            self._quotas.forget(namespace, name)
            return None
        if response.status != 200:
            raise api_error("GET", path, response.status, response.body)
        self._quotas.observe(response.body)
        return response.body

    def reconcile(self, usage: Mapping[tuple[str, str], Used]) -> None:
        raise ApiError("a live cluster's quota usage is recounted by its resourcequota controller")

    def close(self) -> None:
        pass


def _as_retry_of(first: Charge, again: Charge) -> Outcome | None:
    if first.outcome is not None and first.outcome.applied is Applied.CHANGED:
        return replay(again.request, first.request.fingerprint)
    return first.outcome


def namespace_of(quota: JSONObject) -> str:
    return str(quota["metadata"].get("namespace") or "")


def _hard(quota: JSONObject) -> object:
    return (quota.get("status") or {}).get("hard")


def _used(quota: JSONObject) -> Used:
    try:
        return to_strings(parse_list((quota.get("status") or {}).get("used"), "status.used"))
    except QuotaError as exc:
        raise ApiError(f"resourcequota {_status_path(quota)}: {exc}") from None


def _status_path(quota: JSONObject) -> str:
    metadata = quota["metadata"]
    namespace, name = quote(str(metadata.get("namespace") or "")), quote(str(metadata["name"]))
    return f"/api/v1/namespaces/{namespace}/resourcequotas/{name}/status"
