"""Plugin rules beyond the corpus: NamespaceExists, SecurityContextDeny, the ServiceAccount's
secret-token mode, automount, pull secrets and mirror pods."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gatekeeper.admission.chain import build_chain
from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.registry import PluginOptions
from gatekeeper.api.admission import parse_admission_review
from gatekeeper.backends.memory import MemoryStore
from tests.support.admission import namespace, pod, request, review, service_account

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def admit(plugins: list[str], objects: list[dict[str, Any]], obj: Any = None, operation: str = "CREATE",
          options: PluginOptions | None = None, **kwargs: Any) -> Outcome:
    chain = build_chain(plugins, options)
    return chain.admit(request(operation, obj=obj, **kwargs), MemoryStore(objects))


def denial(outcome: Outcome) -> tuple[int, str]:
    assert outcome.denied is not None, "expected a denial"
    return outcome.denied.code, outcome.denied.message


# --- NamespaceExists -----------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
def test_namespace_exists_refuses_every_operation_in_a_missing_namespace(operation: str) -> None:
    old = pod() if operation != "CREATE" else None
    outcome = admit(["NamespaceExists"], [], operation=operation, old=old)
    assert denial(outcome) == (404, 'namespaces "team" not found')


def test_namespace_exists_lets_terminating_namespaces_and_namespaces_themselves_pass() -> None:
    assert admit(["NamespaceExists"], [namespace("team", "Terminating")]).allowed
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "new"}}
    assert build_chain(["NamespaceExists"]).admit(
        request("CREATE", "namespaces", "Namespace", "", "new", obj=ns), MemoryStore()
    ).allowed


# --- SecurityContextDeny ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"securityContext": {"supplementalGroups": [1]}}, "pod.Spec.SecurityContext.SupplementalGroups"),
        ({"securityContext": {"seLinuxOptions": {"level": "s0"}}}, "pod.Spec.SecurityContext.SELinuxOptions"),
        ({"securityContext": {"runAsUser": 0}}, "pod.Spec.SecurityContext.RunAsUser"),
        ({"securityContext": {"fsGroup": 2000}}, "pod.Spec.SecurityContext.FSGroup"),
        ({"initContainers": [{"name": "i", "securityContext": {"runAsUser": 1}}]},
         "SecurityContext.RunAsUser"),
        ({"containers": [{"name": "c", "securityContext": {"seLinuxOptions": {}}}]},
         "SecurityContext.SELinuxOptions"),
    ],
)
def test_security_context_deny_refuses_the_fields_it_forbade(spec: dict[str, Any], message: str) -> None:
    outcome = admit(["SecurityContextDeny"], [], obj=pod(**spec))
    assert denial(outcome) == (403, f'pods "web" is forbidden: {message} is forbidden')


def test_security_context_deny_allows_other_settings_and_other_resources() -> None:
    allowed = pod(securityContext={"runAsNonRoot": True},
                  containers=[{"name": "c", "securityContext": {"readOnlyRootFilesystem": True}}])
    assert admit(["SecurityContextDeny"], [], obj=allowed).allowed
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team"}}
    assert admit(["SecurityContextDeny"], [], obj=bare).allowed
    not_a_pod = admit(["SecurityContextDeny"], [], obj={**bare, "kind": "Deployment"})
    assert denial(not_a_pod) == (400, "Resource was marked with kind Pod but was unable to be converted")
    status = pod(securityContext={"runAsUser": 0})
    assert admit(["SecurityContextDeny"], [], obj=status, operation="UPDATE", sub_resource="status").allowed


# --- ServiceAccount --------------------------------------------------------------------------


def test_the_pods_automount_setting_wins_over_the_service_accounts() -> None:
    sa = service_account(automountServiceAccountToken=False)
    assert "volumes" not in (admit(["ServiceAccount"], [sa]).object or {})["spec"]
    mounted = admit(["ServiceAccount"], [sa], obj=pod(automountServiceAccountToken=True)).object or {}
    name = mounted["spec"]["volumes"][0]["name"]
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    off = admit(["ServiceAccount"], [service_account()], obj=pod(automountServiceAccountToken=False))
    assert "volumes" not in (off.object or {})["spec"]


def test_image_pull_secrets_are_copied_only_when_the_pod_has_none() -> None:
    sa = service_account(imagePullSecrets=[{"name": "registry"}])
    copied = admit(["ServiceAccount"], [sa]).object or {}
    assert copied["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    own = admit(["ServiceAccount"], [sa], obj=pod(imagePullSecrets=[{"name": "mine"}])).object or {}
    assert own["spec"]["imagePullSecrets"] == [{"name": "mine"}]


def test_secret_token_mode_mounts_the_service_accounts_token_secret() -> None:
    token = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "default-token-abcde", "namespace": "team",
                     "annotations": {"kubernetes.io/service-account.name": "default"}},
    }
    sa = service_account(secrets=[{"name": "default-token-abcde"}])
    options = PluginOptions(service_account_token_volume="secret")
    spec = (admit(["ServiceAccount"], [sa, token], options=options).object or {})["spec"]
    name = "default-token-abcde"
    assert spec["volumes"] == [{"name": name, "secret": {"secretName": name}}]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "default-token-abcde", "readOnly": True, "mountPath": MOUNT}
    ]


def test_secret_token_mode_without_a_token_secret_asks_to_retry() -> None:
    options = PluginOptions(service_account_token_volume="secret")
    outcome = admit(["ServiceAccount"], [service_account()], options=options)
    code, message = denial(outcome)
    assert code == 500 and "could not be completed at this time, please try again" in message


def test_a_mirror_pod_is_not_mutated_and_may_not_name_a_service_account() -> None:
    mirror = pod()
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    outcome = admit(["ServiceAccount"], [], obj=mirror)
    assert outcome.allowed and outcome.patch == []
    mirror["spec"]["serviceAccountName"] = "default"
    assert denial(admit(["ServiceAccount"], [service_account()], obj=mirror)) == (
        403, 'pods "web" is forbidden: a mirror pod may not reference service accounts'
    )



def test_a_mirror_pod_may_reference_a_secret_with_an_empty_name() -> None:
    """VisitPodSecretNames skips empty names; validation only warns of an empty pull-secret name."""
    mirror = pod(imagePullSecrets=[{"name": ""}], volumes=[{"name": "v", "secret": {"secretName": ""}}])
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    outcome = admit(["ServiceAccount"], [], obj=mirror)
    assert outcome.allowed and outcome.patch == []
    mirror["spec"]["imagePullSecrets"] = [{"name": "registry"}]
    assert denial(admit(["ServiceAccount"], [], obj=mirror)) == (
        403, 'pods "web" is forbidden: a mirror pod may not reference secrets'
    )


def test_a_create_of_the_ephemeralcontainers_subresource_is_admitted_like_a_pod_create() -> None:
    """As Go's Admit sees it; an API server only ever updates that subresource."""
    outcome = admit(["ServiceAccount"], [], sub_resource="ephemeralcontainers")
    assert denial(outcome) == (
        403, 'pods "web" is forbidden: error looking up service account team/default: '
        'serviceaccount "default" not found'
    )
    mounted = admit(["ServiceAccount"], [service_account()], sub_resource="ephemeralcontainers")
    assert mounted.allowed and mounted.object is not None
    assert mounted.object["spec"]["serviceAccountName"] == "default"
    assert mounted.object["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == MOUNT

def test_ephemeral_container_secret_refusal_is_a_bare_500_as_in_kubernetes() -> None:
    sa = service_account(metadata={"name": "default", "namespace": "team",
                                   "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}})
    debug = pod(serviceAccountName="default", ephemeralContainers=[
        {"name": "dbg", "image": "busybox", "envFrom": [{"secretRef": {"name": "db"}}]}
    ])
    outcome = admit(["ServiceAccount"], [sa], obj=debug, operation="UPDATE", old=debug,
                    sub_resource="ephemeralcontainers")
    assert denial(outcome) == (
        500,
        'ephemeral container dbg with envFrom referencing secret.secretName="db" is not allowed '
        "because service account default does not reference that secret",
    )


def test_writing_a_service_account_with_the_deprecated_annotation_warns_as_kubernetes_does() -> None:
    annotated = service_account(metadata={"name": "ci", "namespace": "team", "annotations": {
        "kubernetes.io/enforce-mountable-secrets": "true"}})
    chain = build_chain(["ServiceAccount"])
    for operation in ("CREATE", "UPDATE"):
        req = request(operation, "serviceaccounts", "ServiceAccount", name="ci", obj=annotated, old=annotated)
        outcome = chain.admit(req, MemoryStore())
        assert outcome.allowed and outcome.patch == []
        assert outcome.warnings == (
            "metadata.annotations[kubernetes.io/enforce-mountable-secrets]: deprecated in v1.32+; "
            "prefer separate namespaces to isolate access to mounted secrets",
        )
    plain = request("CREATE", "serviceaccounts", "ServiceAccount", name="ci", obj=service_account("ci"))
    assert chain.admit(plain, MemoryStore()).warnings == ()


# --- objects of the wrong shape (found by tests/fuzz/inproc.py, seed 42) -----------------------


def test_limit_ranger_defaults_a_pod_whose_metadata_is_null() -> None:
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "team"},
              "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}}]}}
    outcome = admit(["LimitRanger"], [limits], obj={**pod(), "metadata": None})
    assert outcome.allowed, outcome.denied
    annotations = (outcome.object or {})["metadata"]["annotations"]
    assert annotations["kubernetes.io/limit-ranger"].startswith("LimitRanger plugin set: cpu request")


@pytest.mark.parametrize(
    ("obj", "operation", "message"),
    [
        ({**pod(), "spec": "x"}, "UPDATE", "spec: expected an object"),
        (pod(containers=["x"]), "CREATE", "spec.containers: expected a list of objects"),
        (pod(containers=[{"name": "a", "volumeMounts": "x"}]), "CREATE",
         "spec.containers[0].volumeMounts: expected a list of objects"),
        (pod(volumes={"a": 1}), "CREATE", "spec.volumes: expected a list of objects"),
    ],
    ids=["spec-string-validate", "container-string", "mounts-string", "volumes-object"],
)
def test_service_account_names_the_field_of_the_wrong_shape(obj: Any, operation: str, message: str) -> None:
    # A kind the review parser does not know (group "x") on the pods resource: the parser leaves
    # the object's shape alone, the plugin (which goes by resource) must not trip over it.
    doc = review(operation, obj=obj, old=pod() if operation == "UPDATE" else None)
    doc["request"]["kind"]["group"] = "x"
    chain = build_chain(["ServiceAccount"])
    outcome = chain.admit(parse_admission_review(doc)[1], MemoryStore([service_account()]))
    assert denial(outcome) == (400, message)


def test_a_claim_whose_spec_is_no_object_is_refused_naming_the_field() -> None:
    from gatekeeper.admission.quota.evaluators.pvcs import requested_storage
    from gatekeeper.admission.quota.resources import QuotaError

    with pytest.raises(QuotaError, match=r"^spec: expected an object$"):
        requested_storage({"kind": "PersistentVolumeClaim", "spec": "x" * 10})
    with pytest.raises(QuotaError, match=r"^spec\.resources\.requests: expected an object$"):
        requested_storage({"spec": {"resources": {"requests": ["1Gi"]}}})


def test_a_manifest_whose_kind_is_a_list_is_a_value_error() -> None:
    from gatekeeper.admission.state import key_of

    with pytest.raises(ValueError, match=r"^kind: expected one of"):
        key_of({"kind": ["Namespace"], "metadata": {"name": "x"}})


def test_a_pod_spec_that_is_no_object_is_a_quota_error_not_an_attribute_error() -> None:
    from gatekeeper.admission.quota.resources import QuotaError
    from gatekeeper.admission.quota.scopes import is_terminating

    with pytest.raises(QuotaError, match=r"^spec: expected an object$"):
        is_terminating("...")  # type: ignore[arg-type]


# --- stored objects, decoded into typed views where a plugin takes them from the store ---------


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([service_account(secrets="db")], "secrets: expected an array, got string"),
        ([service_account(imagePullSecrets=[{"name": 7}])],
         "imagePullSecrets[0].name: expected a string, got number"),
        ([service_account(automountServiceAccountToken="yes")],
         "automountServiceAccountToken: expected a boolean, got string"),
    ],
    ids=["secrets-string", "pull-secret-name-number", "automount-string"],
)
def test_a_malformed_stored_service_account_is_a_500_naming_the_object_and_field(
    objects: list[dict[str, Any]], message: str
) -> None:
    where = "ServiceAccount: serviceaccount team/default"
    assert denial(admit(["ServiceAccount"], objects)) == (500, f"{where}: {message}")


def test_a_malformed_stored_namespace_is_a_500_naming_the_object_and_field() -> None:
    broken = {**namespace("team"), "status": {"phase": ["Active"]}}
    assert denial(admit(["NamespaceLifecycle"], [broken])) == (
        500, "NamespaceLifecycle: namespace team: status.phase: expected a string, got array"
    )


def test_the_service_account_view_reads_what_the_plugin_needs() -> None:
    from gatekeeper.k8s.objects import ServiceAccount

    view = ServiceAccount.decode(service_account(
        "ci", metadata={"name": "ci", "namespace": "team", "uid": "u1", "annotations": {"a": "b"}},
        secrets=[{"name": "db"}, {}], imagePullSecrets=[{"name": "registry"}],
        automountServiceAccountToken=False,
    ))
    assert (view.metadata.namespace, view.metadata.name, view.metadata.uid) == ("team", "ci", "u1")
    assert view.secrets == ("db", "") and view.image_pull_secrets == ("registry",)
    assert view.automount_token is False and dict(view.metadata.annotations) == {"a": "b"}
    with pytest.raises(TypeError):
        view.metadata.annotations["a"] = "c"  # type: ignore[index]
