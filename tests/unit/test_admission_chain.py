"""The chain (order, phases, JSONPatch, refusals), the registry, and the admission stream."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jsonpatch
import pytest

from gatekeeper.admission.chain import Chain, build_chain
from gatekeeper.admission.errors import forbidden
from gatekeeper.admission.patch import Patch
from gatekeeper.admission.plugin import Warnings
from gatekeeper.admission.registry import KNOWN_PLUGINS, UnknownPlugin, check_names, parse_plugin_list
from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store, StoreError
from gatekeeper.backends.memory import MemoryStore
from tests.support.admission import namespace, request

SEED_FLAG = "NamespaceLifecycle,NamespaceExists,LimitRanger,SecurityContextDeny,ServiceAccount,ResourceQuota"


class Labeler:
    name: ClassVar[str] = "Labeler"

    def __init__(self, value: str) -> None:
        self.value = value

    def handles(self, request: AdmissionRequest) -> bool:
        return request.is_core("pods") and request.object is not None

    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store, patch: Patch) -> Warnings:
        seen = obj["metadata"].get("labels", {}).get("seen", "")
        patch.put(obj, (), ("metadata", "labels", "seen"), seen + self.value)
        return [f"labelled {self.value}"]


class RefuseLabelled:
    name: ClassVar[str] = "RefuseLabelled"

    def handles(self, request: AdmissionRequest) -> bool:
        return True

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        if obj and obj["metadata"].get("labels"):
            raise forbidden(request, "labelled")
        return None


def test_mutation_runs_in_order_on_a_copy_and_comes_back_as_a_patch() -> None:
    req = request()
    original = jsonpatch.apply_patch(req.object, [])
    outcome = Chain([Labeler("a"), Labeler("b")]).mutate(req, MemoryStore())
    assert req.object == original  # the request's object is untouched
    assert outcome.allowed and outcome.warnings == ("labelled a", "labelled b")
    assert jsonpatch.apply_patch(req.object, outcome.patch)["metadata"]["labels"] == {"seen": "ab"}


def test_validate_sees_the_request_object_and_never_patches() -> None:
    outcome = Chain([Labeler("a"), RefuseLabelled()]).validate(request(), MemoryStore())
    assert outcome.allowed and outcome.patch == []


def test_admit_validates_the_mutated_object() -> None:
    outcome = Chain([Labeler("a"), RefuseLabelled()]).admit(request(), MemoryStore())
    assert not outcome.allowed and outcome.denied is not None
    assert outcome.denied.message == 'pods "web" is forbidden: labelled'
    assert outcome.warnings == ("labelled a",)


class CountCalls:
    name: ClassVar[str] = "CountCalls"

    def __init__(self) -> None:
        self.seen: list[JSONObject] = []

    def handles(self, request: AdmissionRequest) -> bool:
        return True

    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store, patch: Patch) -> Warnings:
        self.seen.append(obj)
        patch.set(obj, (), "ignored", True)
        return None


def test_a_request_without_object_gets_an_empty_object_and_no_patch() -> None:
    counter = CountCalls()
    outcome = Chain([counter]).mutate(request("DELETE"), MemoryStore())
    assert counter.seen == [{"ignored": True}]
    assert outcome.allowed and outcome.patch == [] and outcome.object is None


def test_registry_orders_plugins_as_kubernetes_does_and_accepts_the_seed_flag() -> None:
    assert check_names(parse_plugin_list(SEED_FLAG)) == KNOWN_PLUGINS
    assert check_names(["ServiceAccount", "NamespaceLifecycle"]) == ("NamespaceLifecycle", "ServiceAccount")
    assert build_chain(parse_plugin_list(SEED_FLAG)).names == KNOWN_PLUGINS


def test_an_unknown_plugin_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownPlugin) as info:
        check_names(["NamespaceLifecycle", "AlwaysPullImages"])
    assert "AlwaysPullImages" in str(info.value)
    assert "known plugins: " + ", ".join(KNOWN_PLUGINS) in str(info.value)


def test_stream_a_created_namespace_exists_and_a_deleted_one_terminates() -> None:
    store = MemoryStore()
    chain = build_chain(["NamespaceLifecycle"])
    create_ns = request("CREATE", "namespaces", "Namespace", "", "team",
                        obj={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert chain.simulate(create_ns, store).allowed
    assert store.get("namespaces", "", "team") == namespace("team")
    assert chain.simulate(request(), store).allowed
    assert chain.simulate(request("DELETE", "namespaces", "Namespace", "", "team"), store).allowed
    refused = chain.simulate(request(), store)
    assert refused.denied is not None and "because it is being terminated" in refused.denied.message


def test_stream_tracks_service_accounts_and_ignores_subresources() -> None:
    store = MemoryStore([namespace("team")])
    chain = build_chain(["NamespaceLifecycle", "ServiceAccount"])
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}
    create = request("CREATE", "serviceaccounts", "ServiceAccount", name="robot", obj=sa)
    assert chain.simulate(create, store).allowed
    assert store.get("serviceaccounts", "team", "robot") is not None
    token = request("CREATE", "serviceaccounts", "TokenRequest", name="robot", obj={"kind": "TokenRequest"})
    token = dataclasses.replace(token, sub_resource="token")
    assert chain.simulate(token, store).allowed
    stored = {**sa, "metadata": {"name": "robot", "namespace": "team"}}
    assert store.get("serviceaccounts", "team", "robot") == stored
    assert chain.simulate(request("DELETE", "serviceaccounts", "ServiceAccount", name="robot"), store).allowed
    assert store.get("serviceaccounts", "team", "robot") is None


def test_dry_run_never_changes_the_store() -> None:
    store = MemoryStore([namespace("team")])
    chain = build_chain(["NamespaceLifecycle"])
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    create = request("CREATE", "secrets", "Secret", name="s", obj=secret, dry_run=True)
    assert chain.admit(create, store).allowed
    assert chain.admit(request("DELETE", "namespaces", "Namespace", "", "team", dry_run=True), store).allowed
    assert store.all() == [namespace("team")]


class UnreachableStore(MemoryStore):
    """A store whose server is gone: every read raises StoreError, as etcd's does."""

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        raise StoreError("etcd is unavailable: no member answered")


@pytest.mark.parametrize("phase", ["mutate", "validate", "admit"])
def test_a_store_failure_inside_a_plugin_leaves_the_chain_for_the_server_to_answer(phase: str) -> None:
    chain = build_chain(["NamespaceLifecycle"])
    with pytest.raises(StoreError, match="etcd is unavailable") as raised:
        getattr(chain, phase)(request(), UnreachableStore())
    assert "raised in admission plugin NamespaceLifecycle" in (raised.value.__notes__ or [])


class KeyErrorBug:
    name: ClassVar[str] = "KeyErrorBug"

    def handles(self, request: AdmissionRequest) -> bool:
        return True

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        return [str({}["missing"])]


def test_a_bug_in_a_plugin_is_not_turned_into_a_refusal() -> None:
    with pytest.raises(KeyError) as raised:
        Chain([KeyErrorBug()]).validate(request(), MemoryStore())
    assert raised.value.__notes__ == ["raised in admission plugin KeyErrorBug"]
