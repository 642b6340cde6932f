"""`serve --kubeconfig ... --quota-controller`: gatekeeper recounts quota usage from its own watches,
for clusters that run without kube-controller-manager's resourcequota controller.

What the in-tree controller does, from the same evaluators admission uses:
* `status.hard` follows `spec.hard` (until then admission does not enforce a quota, as in-tree);
* `status.used` is recounted from the objects that exist (pods count until they finish or their
  grace period has passed, gatekeeper/admission/quota/evaluators/pods.py), for every resource in `hard`;
* a namespace is recounted when one of its quotas changes or a counted object in it is deleted
  (replenishment), and every namespace every --quota-sync-period (the full resync, which also
  catches pods whose grace period ran out).

A write carries the quota's resourceVersion; a conflict is left to the next round. Like the
in-tree controller's, a recount cannot see a create that was admitted but is not stored yet, so
run one controller per cluster: this one, or kube-controller-manager's, not both.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterable

from gatekeeper.admission.quota.quotas import Quota, parse_quota
from gatekeeper.admission.quota.reconcile import LiveObject, recount
from gatekeeper.admission.quota.resources import QuotaError, mask, parse_list, to_strings
from gatekeeper.admission.state import JSONObject
from gatekeeper.backends.kube.client import ApiError, KubeClient
from gatekeeper.backends.kube.reflector import Reflector, Strip

log = logging.getLogger("gatekeeper.admission.quota")

# What the recount reads, besides the Secrets the store watches anyway (their count only).
COUNTED = {
    "pods": "/api/v1/pods",
    "services": "/api/v1/services",
    "persistentvolumeclaims": "/api/v1/persistentvolumeclaims",
    "configmaps": "/api/v1/configmaps",
    "replicationcontrollers": "/api/v1/replicationcontrollers",
}
KINDS = {
    "pods": "Pod",
    "services": "Service",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "configmaps": "ConfigMap",
    "replicationcontrollers": "ReplicationController",
}


def counted_strip(resource: str) -> Strip:
    """Objects as the recount needs them: ConfigMaps without their data, the rest whole."""
    kind = KINDS[resource]

    def strip(obj: JSONObject) -> JSONObject:
        obj["apiVersion"], obj["kind"] = "v1", kind
        if resource == "configmaps":
            return {"apiVersion": "v1", "kind": kind, "metadata": obj.get("metadata") or {}}
        return obj

    return strip


class QuotaController:
    def __init__(
        self, client: KubeClient, quotas: Reflector, counted: dict[str, Reflector], period: float
    ) -> None:
        self._client = client
        self._quotas = quotas
        self._counted = counted
        self._period = period
        self._dirty: set[str] = set()
        self._seen_hard: dict[tuple[str, str], object] = {}
        self._all = True
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.syncs = 0
        self.writes = 0
        self._thread = threading.Thread(target=self._run, name="quota-controller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def quota_changed(self, event: str, obj: JSONObject | None) -> None:
        """Only a new spec.hard is work (as in-tree): admission's own status writes are not."""
        if obj is None:  # a whole new list
            self.changed()
            return
        metadata = obj["metadata"]
        key = (str(metadata.get("namespace") or ""), str(metadata["name"]))
        if event == "DELETED":
            self._seen_hard.pop(key, None)
            return
        hard = (obj.get("spec") or {}).get("hard")
        if self._seen_hard.get(key) != hard:
            self._seen_hard[key] = hard
            self.changed(key[0])

    def object_changed(self, event: str, obj: JSONObject | None) -> None:
        """Replenishment: a counted object deleted, or a pod that finished, frees usage."""
        if obj is None:
            return
        finished = (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if event == "DELETED" or (event == "MODIFIED" and obj.get("kind") == "Pod" and finished):
            self.changed(str(obj["metadata"].get("namespace") or ""))

    def changed(self, namespace: str = "") -> None:
        """Recount `namespace` soon (every namespace, without one)."""
        with self._lock:
            if namespace:
                self._dirty.add(namespace)
            else:
                self._all = True
        self._wake.set()

    def _run(self) -> None:
        resync_at = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(max(0.0, resync_at - time.monotonic()))
            self._wake.clear()
            everything = time.monotonic() >= resync_at
            if everything:
                resync_at = time.monotonic() + self._period
            with self._lock:
                everything, dirty = everything or self._all, set(self._dirty)
                self._all, self._dirty = False, set()
            if not self._ready():
                self.changed()  # keep the work for when every kind is listed
                self._stop.wait(0.5)
                continue
            namespaces = {str(q["metadata"].get("namespace")) for q in self._quotas.all()}
            for namespace in sorted(namespaces if everything else dirty & namespaces):
                try:
                    self._sync(namespace)
                except Exception:  # one namespace's surprise must not end the controller
                    log.exception(
                        "quota controller: namespace %s failed; retrying at the next sync", namespace
                    )

    def _ready(self) -> bool:
        return self._quotas.status.synced and all(r.status.synced for r in self._counted.values())

    def _sync(self, namespace: str) -> None:
        try:
            objects = [
                LiveObject("", resource, namespace, obj)
                for resource, reflector in self._counted.items()
                for obj in reflector.list(namespace)
            ]
            for quota_object in self._quotas.list(namespace):
                self._sync_quota(quota_object, objects)
            self.syncs += 1
        except (ApiError, QuotaError) as exc:
            log.warning("quota controller: namespace %s: %s; retrying at the next sync", namespace, exc)

    def _sync_quota(self, obj: JSONObject, objects: Iterable[LiveObject]) -> None:
        spec_hard = parse_list((obj.get("spec") or {}).get("hard"), "spec.hard")
        as_spec = {**obj, "status": {"used": (obj.get("status") or {}).get("used") or {}}}
        quota: Quota = parse_quota(as_spec)  # enforced from spec.hard, as this controller will sync it
        (counted,) = recount([quota], {quota.namespace: {quota.name: quota.seed}}, list(objects))
        status = {"hard": to_strings(spec_hard), "used": to_strings(mask(counted.after, spec_hard))}
        current = obj.get("status") or {}
        if (
            _canonical(current.get("hard")) == status["hard"]
            and _canonical(current.get("used")) == (status["used"])
        ):
            return
        updated = copy.deepcopy(obj)
        updated["status"] = status
        path = f"/api/v1/namespaces/{quota.namespace}/resourcequotas/{quota.name}/status"
        response = self._client.request("PUT", path, body=updated)
        if response.status == 200:
            self._quotas.observe(response.body)
            self.writes += 1
        elif response.status == 409:  # changed meanwhile: recount again soon
            self.changed(quota.namespace)
        elif response.status != 404:  # 404: gone, nothing to keep
            raise ApiError(f"PUT {path}: {response.status} {response.body.get('message', '')}")


def _canonical(values: object) -> dict[str, str]:
    try:
        return to_strings(parse_list(values, "status"))
    except QuotaError:
        return {}
