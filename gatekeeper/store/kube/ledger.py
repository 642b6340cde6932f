"""Quota usage in a live cluster: the ResourceQuota objects' own `status.used`, as Kubernetes keeps it.

A charge writes the quota's status through the API with the object's resourceVersion, so the API
server refuses it (409 Conflict) if anyone else changed the quota in between: a compare-and-swap,
as kube-apiserver's own quota admission does. On a conflict the quota is read again and only the
quotas that failed are charged again (resourcequota/controller.go, checkQuotas); quotas already
written keep their charge. Nothing is ever given back here: kube-controller-manager's resourcequota
controller recounts usage when objects are really gone.

Charges of one namespace take turns inside this process, so replicas conflict only with each
other. A request uid is charged once per process (a reinvoked or retried review is not charged
twice by the same replica).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from urllib.parse import quote

from gatekeeper.quota.ledger import (
    REMEMBER_REQUESTS_SECONDS,
    Applied,
    Change,
    NamespaceUsage,
    Outcome,
    Refused,
    RequestKey,
    Used,
    replay,
)
from gatekeeper.quota.resources import QuotaError, parse_list, to_strings
from gatekeeper.store.base import JSONObject
from gatekeeper.store.kube.client import ApiError, KubeClient, api_error
from gatekeeper.store.kube.reflector import Reflector

MAX_ATTEMPTS = 5  # kube-apiserver's quota evaluator retries 3 times; a few more for busy namespaces
CONFLICT, NOT_FOUND = 409, 404


class ResourceQuotaStatusLedger:
    live = True

    def __init__(self, client: KubeClient, quotas: Reflector) -> None:
        self._client = client
        self._quotas = quotas
        self._locks_guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._applied: dict[str, tuple[str, float]] = {}  # uid -> (fingerprint, when)
        self.conflicts = 0  # 409s met, for /metrics

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        """The seeds are the watched objects' status.used: in a live cluster they are the usage."""
        return {name: dict(seed) for name, seed in seeds.items()}

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        with self._lock(namespace):
            if request.uid in self._applied:
                return replay(request, self._applied[request.uid][0])
            current = {name: obj for name in seeds if (obj := self._quotas.get(namespace, name)) is not None}
            outcome = self._charge(namespace, current, change)
            if outcome.applied is Applied.CHANGED:
                self._remember(request)
            return outcome

    def _charge(self, namespace: str, current: dict[str, JSONObject], change: Change) -> Outcome:
        before = {name: _used(obj) for name, obj in current.items()}
        pending = set(current)
        for _attempt in range(MAX_ATTEMPTS):
            after = change(before)
            if isinstance(after, Refused):
                return Outcome(Applied.REFUSED, after.message)
            writes = {name: used for name, used in after.items() if name in pending and used != before[name]}
            conflicted = [name for name, used in writes.items() if not self._write(current[name], used)]
            if not conflicted:
                return Outcome(Applied.CHANGED)
            self.conflicts += len(conflicted)
            pending = set(conflicted)
            for name in conflicted:
                fresh = self._read(namespace, name)
                if fresh is None:  # the quota was deleted meanwhile: nothing left to charge
                    pending.discard(name)
                    continue
                current[name], before[name] = fresh, _used(fresh)
        raise ApiError(f"resourcequotas in {namespace}: still conflicting after {MAX_ATTEMPTS} attempts")

    def _write(self, quota: JSONObject, used: Used) -> bool:
        """PUT the status with the quota's resourceVersion; False on a conflict (someone else won)."""
        updated = copy.deepcopy(quota)
        updated.setdefault("status", {})["used"] = dict(used)
        path = _status_path(quota)
        response = self._client.request("PUT", path, body=updated)
        if response.status == CONFLICT:
            return False
        if response.status == NOT_FOUND:
            return True  # gone: a deleted quota limits nothing
        if response.status != 200:
            raise api_error("PUT", path, response.status, response.body)
        self._quotas.observe(response.body)
        return True

    def _read(self, namespace: str, name: str) -> JSONObject | None:
        path = f"/api/v1/namespaces/{quote(namespace)}/resourcequotas/{quote(name)}"
        response = self._client.request("GET", path)
        if response.status == NOT_FOUND:
            return None
        if response.status != 200:
            raise api_error("GET", path, response.status, response.body)
        self._quotas.observe(response.body)
        return response.body

    def _lock(self, namespace: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(namespace, threading.Lock())

    def _remember(self, request: RequestKey) -> None:
        now = time.time()
        with self._locks_guard:
            while self._applied:
                oldest = next(iter(self._applied))
                if self._applied[oldest][1] >= now - REMEMBER_REQUESTS_SECONDS:
                    break
                del self._applied[oldest]
            self._applied[request.uid] = (request.fingerprint, now)

    def reconcile(self, usage: Mapping[tuple[str, str], Used]) -> None:
        raise ApiError("a live cluster's quota usage is recounted by its resourcequota controller")

    def close(self) -> None:
        pass


def _used(quota: JSONObject) -> Used:
    try:
        return to_strings(parse_list((quota.get("status") or {}).get("used"), "status.used"))
    except QuotaError as exc:
        raise ApiError(f"resourcequota {_status_path(quota)}: {exc}") from None


def _status_path(quota: JSONObject) -> str:
    metadata = quota["metadata"]
    namespace, name = quote(str(metadata.get("namespace") or "")), quote(str(metadata["name"]))
    return f"/api/v1/namespaces/{namespace}/resourcequotas/{name}/status"
