"""The JSONPatch the mutating plugins record, checked against jsonpatch's diff of the whole pod.

kube-apiserver applies the patch to the object it sent, so the recording must replay the
mutation exactly from the original: arrays created when missing or null, keys escaped per RFC
6901. Hypothesis draws pods, LimitRanges and ServiceAccounts; the diff (jsonpatch.make_patch) is
the checker the chain used to compute on every request."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.admission.chain import build_chain
from gatekeeper.admission.patch import Patch, pointer
from gatekeeper.admission.plugin import PluginOptions
from gatekeeper.backends.memory import MemoryStore
from tests.support.admission import namespace, request, service_account

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ABSENT: Any = object()  # a key left out, as opposed to present with null or an empty value


def _with(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not ABSENT}


def maybe(strategy: st.SearchStrategy[Any], empty: Any) -> st.SearchStrategy[Any]:
    """A field absent, null, empty, or drawn."""
    return st.one_of(st.just(ABSENT), st.none(), st.just(empty), strategy)


names = st.sampled_from(["a", "b", "x/y", "t~1", "cpu"])
quantities = st.sampled_from(["100m", "1", "2Gi", "0"])
resource_names = st.sampled_from(["cpu", "memory", "ephemeral-storage"])
resource_lists = st.dictionaries(resource_names, quantities, max_size=2)
mounts = st.lists(
    st.builds(lambda name, path: {"name": name, "mountPath": path}, names, st.sampled_from(["/data", MOUNT])),
    max_size=2,
)
containers = st.builds(
    lambda name, resources, volume_mounts: _with(
        {"name": name, "image": "pause", "resources": resources, "volumeMounts": volume_mounts}
    ),
    names,
    maybe(st.builds(lambda r, lim: _with({"requests": r, "limits": lim}), maybe(resource_lists, {}),
                    maybe(resource_lists, {})), {}),
    maybe(mounts, []),
)
volumes = st.lists(
    st.builds(lambda name: {"name": name, "emptyDir": {}}, st.sampled_from(["data", "kube-api-access-x1"])),
    max_size=2,
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    spec = _with({
        "containers": draw(st.lists(containers, min_size=1, max_size=3)),
        "initContainers": draw(maybe(st.lists(containers, max_size=2), [])),
        "volumes": draw(maybe(volumes, [])),
        "serviceAccountName": draw(st.sampled_from([ABSENT, "", "default", "robot"])),
        "automountServiceAccountToken": draw(st.sampled_from([ABSENT, True, False])),
        "imagePullSecrets": draw(maybe(st.just([{"name": "own"}]), [])),
    })
    keys = st.sampled_from(["a/b", "c~d", "e"])
    annotations = draw(maybe(st.dictionaries(keys, st.just("v"), max_size=2), {}))
    metadata = _with({"name": "web", "namespace": "team", "annotations": annotations})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@st.composite
def states(draw: st.DrawFn) -> list[dict[str, Any]]:
    defaults = {"type": "Container", "default": draw(resource_lists), "defaultRequest": draw(resource_lists)}
    limit_range = {"apiVersion": "v1", "kind": "LimitRange",
                   "metadata": {"name": "lr", "namespace": "team"}, "spec": {"limits": [defaults]}}
    accounts = [
        service_account(name, **_with({
            "automountServiceAccountToken": draw(st.sampled_from([ABSENT, True, False])),
            "imagePullSecrets": draw(maybe(st.just([{"name": "registry"}]), [])),
            "secrets": [{"name": f"{name}-token"}],
        }))
        for name in ("default", "robot")
    ]
    secrets = [
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
         "metadata": {"name": f"{name}-token", "namespace": "team",
                      "annotations": {"kubernetes.io/service-account.name": name}}}
        for name in ("default", "robot")
    ]
    return [namespace("team"), limit_range, *accounts, *secrets]


@settings(max_examples=300, deadline=None)
@given(pods(), states(), st.sampled_from(["projected", "secret"]))
def test_the_recorded_patch_replays_the_mutation_exactly(pod: dict[str, Any], state: list[dict[str, Any]],
                                                         token_volume: str) -> None:
    chain = build_chain(["NamespaceLifecycle", "LimitRanger", "ServiceAccount"],
                        PluginOptions(service_account_token_volume=token_volume))
    pod = orjson.loads(orjson.dumps(pod))  # as decoded from the wire: no value shared by two fields
    original = copy.deepcopy(pod)
    outcome = chain.mutate(request(obj=pod), MemoryStore(state))
    assert pod == original  # the request's object is never touched
    if not outcome.allowed:
        return
    mutated = outcome.object
    assert jsonpatch.apply_patch(original, outcome.patch) == mutated
    diffed = jsonpatch.make_patch(original, mutated)
    assert jsonpatch.apply_patch(original, outcome.patch) == diffed.apply(original)


def test_keys_are_escaped_as_rfc_6901_says() -> None:
    assert pointer(("metadata", "annotations", "kubernetes.io/limit-ranger")) == (
        "/metadata/annotations/kubernetes.io~1limit-ranger"
    )
    assert pointer(("a~b", 0, "~/")) == "/a~0b/0/~0~1"


def test_put_creates_what_is_missing_in_one_operation_and_extend_creates_arrays() -> None:
    original: dict[str, Any] = {"metadata": None, "spec": {"volumes": None, "containers": [{}]}}
    obj, patch = copy.deepcopy(original), Patch()
    patch.put(obj, (), ("metadata", "annotations", "a/b"), "v")
    patch.extend(obj["spec"], ("spec",), "volumes", {"name": "v"})
    patch.extend(obj["spec"], ("spec",), "volumes", {"name": "w"})
    assert patch.ops == [
        {"op": "add", "path": "/metadata", "value": {"annotations": {"a/b": "v"}}},
        {"op": "add", "path": "/spec/volumes", "value": [{"name": "v"}]},
        {"op": "add", "path": "/spec/volumes/-", "value": {"name": "w"}},
    ]
    assert jsonpatch.apply_patch(original, patch.ops) == obj


def test_a_recorded_value_is_a_copy_so_later_changes_are_operations_of_their_own() -> None:
    obj: dict[str, Any] = {}
    patch = Patch()
    patch.set(obj, (), "spec", {})
    patch.set(obj["spec"], ("spec",), "serviceAccountName", "default")
    assert patch.ops[0]["value"] == {}
    assert jsonpatch.apply_patch({}, patch.ops) == obj == {"spec": {"serviceAccountName": "default"}}
