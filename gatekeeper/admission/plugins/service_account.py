"""ServiceAccount: default the pod's service account, mount its token, enforce mountable secrets.

Mutation happens on pod CREATE only; validation on pod CREATE and on UPDATE of the
`ephemeralcontainers` subresource. Mirror pods (static pods reported by a kubelet) are never
mutated and may reference neither service accounts nor secrets.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from gatekeeper.admission.errors import AdmissionDenied, bad_request, forbidden, internal
from gatekeeper.admission.patch import Patch, Path
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, SECRET, PluginOptions, Warnings
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import SECRETS, SERVICE_ACCOUNTS, Store
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.k8s.objects import Container, Pod, PodSpec, Secret, annotations_of
from gatekeeper.k8s.objects import ServiceAccount as ServiceAccountView

DEFAULT_SERVICE_ACCOUNT = "default"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
PROJECTED_VOLUME_PREFIX = "kube-api-access-"
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # utilrand's: no vowels, no look-alikes
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
EPHEMERAL = "ephemeralcontainers"
SPEC: Path = ("spec",)
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # strconv.ParseBool


class ServiceAccount:
    name: ClassVar[str] = "ServiceAccount"

    def __init__(self, options: PluginOptions = DEFAULT_OPTIONS) -> None:
        self.secret_token_volume = options.service_account_token_volume == SECRET

    def handles(self, request: AdmissionRequest) -> bool:
        return is_pod_request(request) or is_service_account_write(request)

    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store, patch: Patch) -> Warnings:
        # A CREATE of pods/ephemeralcontainers is mutated too, as Go's Admit does (an API server
        # only ever updates that subresource).
        if not is_pod_request(request) or request.operation != CREATE:
            return None
        if is_mirror_pod(_annotations(obj)):
            return self.validate(request, obj, store)  # Kubernetes' Admit ends with its Validate
        if "spec" not in obj:
            patch.set(obj, (), "spec", {})
        spec = obj["spec"]
        if not isinstance(spec, dict):
            raise bad_request("spec: expected an object")
        if not spec.get("serviceAccountName"):
            patch.set(spec, SPEC, "serviceAccountName", DEFAULT_SERVICE_ACCOUNT)
        account = lookup(request, store, spec["serviceAccountName"])
        if should_automount(account, spec):
            self._mount_token(request, store, account, spec, patch)
        if not spec.get("imagePullSecrets") and account.image_pull_secrets:
            pull = [{"name": name} for name in account.image_pull_secrets]
            patch.set(spec, SPEC, "imagePullSecrets", pull)
        # What Validate would check now (check_pod), with the account already in hand: the pod
        # is decoded again only when the account restricts the secrets it may use.
        if enforces_mountable_secrets(account):
            problem = unmountable_secret(account, pod_view(request, obj).spec)
            if problem:
                raise forbidden(request, problem)
        return None

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        if is_service_account_write(request):
            return deprecation_warnings(obj or {})
        pod = pod_view(request, obj or {})
        if request.operation == UPDATE and request.sub_resource == EPHEMERAL:
            check_ephemeral_containers(request, store, pod)
        elif request.operation == CREATE:
            if is_mirror_pod(pod.annotations):
                check_mirror_pod(request, pod.spec)
            else:
                check_pod(request, store, pod)
        return None

    def _mount_token(
        self,
        request: AdmissionRequest,
        store: Store,
        account: ServiceAccountView,
        spec: JSONObject,
        patch: Patch,
    ) -> None:
        volumes = _objects(spec.get("volumes"), "spec.volumes")
        if self.secret_token_volume:
            token = token_secret_name(store, request.namespace, account)
            existing = _secret_volume(volumes, token)
            name = existing or _free_name(token, volumes)
            volume = {"name": name, "secret": {"secretName": token}}
        else:
            existing = _projected_volume(volumes)
            name = existing or _unique_name(PROJECTED_VOLUME_PREFIX, volumes)
            volume = projected_volume(name)
        if mount_token(spec, name, patch) and not existing:
            patch.extend(spec, SPEC, "volumes", volume)


def is_pod_request(request: AdmissionRequest) -> bool:
    obj = request.object
    return (
        request.is_core("pods")
        and request.sub_resource in ("", EPHEMERAL)
        and request.operation in (CREATE, UPDATE)
        and isinstance(obj, dict)
        and obj.get("kind", "Pod") == "Pod"
    )


def is_service_account_write(request: AdmissionRequest) -> bool:
    return (
        request.is_core("serviceaccounts")
        and not request.sub_resource
        and request.operation in (CREATE, UPDATE)
        and isinstance(request.object, dict)
    )


def deprecation_warnings(account: JSONObject) -> list[str]:
    """What kube-apiserver warns when a service account is written with the deprecated annotation."""
    if ENFORCE_MOUNTABLE_SECRETS not in _annotations(account):
        return []
    return [
        f"metadata.annotations[{ENFORCE_MOUNTABLE_SECRETS}]: deprecated in v1.32+; "
        "prefer separate namespaces to isolate access to mounted secrets"
    ]


def is_mirror_pod(annotations: Mapping[str, Any]) -> bool:
    return MIRROR_POD_ANNOTATION in annotations


def _annotations(obj: JSONObject) -> Mapping[str, Any]:
    try:
        return annotations_of(obj)
    except InvalidObject as err:
        raise bad_request(str(err)) from None


def pod_view(request: AdmissionRequest, obj: JSONObject) -> Pod:
    """The typed view of `obj`: the request's own when `obj` is the request's object, else decoded
    (the chain's mutated copy; a pods request whose kind the review parser does not decode)."""
    if obj is request.object and request.pod is not None:
        return request.pod
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, dict):  # null is an empty PodSpec, as in Go
        raise bad_request("spec: expected an object")
    try:
        return Pod.decode(obj)
    except InvalidObject as err:
        raise bad_request(str(err)) from None


def lookup(request: AdmissionRequest, store: Store, name: str) -> ServiceAccountView:
    account = store.get(SERVICE_ACCOUNTS, request.namespace, name)
    if account is None:
        raise forbidden(
            request,
            f'error looking up service account {request.namespace}/{name}: serviceaccount "{name}" not found',
        )
    try:
        return ServiceAccountView.decode(account)
    except InvalidObject as err:  # the stored object is malformed: no fault of the caller's
        raise internal(f"ServiceAccount: {err}") from None


def should_automount(account: ServiceAccountView, spec: JSONObject) -> bool:
    """The pod's automountServiceAccountToken wins, then the service account's, else true."""
    for setting in (spec.get("automountServiceAccountToken"), account.automount_token):
        if isinstance(setting, bool):
            return setting
    return True


def enforces_mountable_secrets(account: ServiceAccountView) -> bool:
    return account.metadata.annotations.get(ENFORCE_MOUNTABLE_SECRETS) in _GO_TRUE


# --- the token volume -------------------------------------------------------------------


def mount_token(spec: JSONObject, volume_name: str, patch: Patch) -> bool:
    """Mount `volume_name` in every init container and container lacking a mount at the token
    path (ephemeral containers are left alone); True if any container needed it."""
    needed = False
    for kind in ("initContainers", "containers"):
        for i, container in enumerate(_objects(spec.get(kind), f"spec.{kind}")):
            mounts = _objects(container.get("volumeMounts"), f"spec.{kind}[{i}].volumeMounts")
            if not any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                mount = {"name": volume_name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}
                patch.extend(container, (*SPEC, kind, i), "volumeMounts", mount)
                needed = True
    return needed


def _unique_name(prefix: str, volumes: list[JSONObject]) -> str:
    taken = {v.get("name") for v in volumes}
    while True:
        name = prefix + "".join(random.choices(NAME_ALPHABET, k=5))  # a name, not a secret
        if name not in taken:
            return name


def _free_name(preferred: str, volumes: list[JSONObject]) -> str:
    taken = {v.get("name") for v in volumes}
    return preferred if preferred not in taken else _unique_name(f"{preferred}-", volumes)


def _projected_volume(volumes: list[JSONObject]) -> str:
    """The first volume named kube-api-access-*, reused whatever its content (as Kubernetes does)."""
    for volume in volumes:
        if str(volume.get("name", "")).startswith(PROJECTED_VOLUME_PREFIX):
            return str(volume["name"])
    return ""


def projected_volume(name: str) -> JSONObject:
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def _secret_volume(volumes: list[JSONObject], token: str) -> str:
    for volume in volumes:
        secret = volume.get("secret")
        if isinstance(secret, dict) and secret.get("secretName") == token:
            return str(volume.get("name", ""))
    return ""


def token_secret_name(store: Store, namespace: str, account: ServiceAccountView) -> str:
    """The first token Secret the service account references (the pre-1.24 secret-based token)."""
    for name in account.secrets:
        secret = store.get(SECRETS, namespace, name)
        if secret is not None and is_token_for(_secret(secret), account):
            return name
    # Kubernetes answered "retry later" while its token controller had not made the secret yet
    raise AdmissionDenied(
        500,
        "ServerTimeout",
        "The create pod operation against serviceaccounts could not be completed at this time, "
        "please try again.",
    )


def is_token_for(secret: Secret, account: ServiceAccountView) -> bool:
    if secret.type != TOKEN_SECRET_TYPE:
        return False
    annotations = secret.metadata.annotations
    if annotations.get(SA_NAME_ANNOTATION) != account.metadata.name:
        return False
    uid = annotations.get(SA_UID_ANNOTATION)
    return not uid or uid == account.metadata.uid


def _secret(stored: JSONObject) -> Secret:
    try:
        return Secret.decode(stored)
    except InvalidObject as err:
        raise internal(f"ServiceAccount: {err}") from None


# --- validation -------------------------------------------------------------------------


def check_mirror_pod(request: AdmissionRequest, spec: PodSpec) -> None:
    if spec.service_account_name:
        raise forbidden(request, "a mirror pod may not reference service accounts")
    if any(True for _ in spec.secret_names()):
        raise forbidden(request, "a mirror pod may not reference secrets")
    if any(volume.projects_token for volume in spec.volumes):
        raise forbidden(request, "a mirror pod may not use ServiceAccountToken volume projections")


def _objects(value: object, where: str) -> list[JSONObject]:
    """A list of objects (absent: empty), or a 400 naming the field."""
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise bad_request(f"{where}: expected a list of objects")
    return value


def pod_account(request: AdmissionRequest, store: Store, pod: Pod) -> ServiceAccountView:
    """The service account the pod names, which must exist; 403 when it names none."""
    if not pod.spec.service_account_name:
        raise forbidden(request, f"no service account specified for pod {request.namespace}/{pod.name}")
    return lookup(request, store, pod.spec.service_account_name)


def check_pod(request: AdmissionRequest, store: Store, pod: Pod) -> None:
    account = pod_account(request, store, pod)
    if enforces_mountable_secrets(account):
        problem = unmountable_secret(account, pod.spec)
        if problem:
            raise forbidden(request, problem)


def check_ephemeral_containers(request: AdmissionRequest, store: Store, pod: Pod) -> None:
    account = pod_account(request, store, pod)
    if not enforces_mountable_secrets(account):
        return
    problem = _unreferenced_env(account, pod.spec.ephemeral_containers, "ephemeral container")
    if problem:
        # a plain error in Kubernetes, so it surfaces as a 500 with the bare message
        raise AdmissionDenied(500, "Unknown", problem)


def unmountable_secret(account: ServiceAccountView, spec: PodSpec) -> str | None:
    """The first secret reference the service account does not allow, worded as Kubernetes does."""
    sa = account.metadata.name
    mountable = set(account.secrets)
    for volume in spec.volumes:
        if volume.secret_name is not None and volume.secret_name not in mountable:
            return (
                f'volume with secret.secretName="{volume.secret_name}" is not allowed '
                f"because service account {sa} does not reference that secret"
            )
    for containers, label in ((spec.init_containers, "init container"), (spec.containers, "container")):
        problem = _unreferenced_env(account, containers, label)
        if problem:
            return problem
    pullable = set(account.image_pull_secrets)
    for index, name in enumerate(spec.image_pull_secrets):
        if name not in pullable:
            return (
                f'imagePullSecrets[{index}].name="{name}" is not allowed because '
                f"service account {sa} does not reference that imagePullSecret"
            )
    return None


def _unreferenced_env(account: ServiceAccountView, containers: Sequence[Container], label: str) -> str | None:
    mountable = set(account.secrets)
    for container in containers:
        for use in container.env_secrets:
            if use.secret not in mountable:
                return (
                    f"{label} {container.name} with {use.how} "
                    f'referencing secret.secretName="{use.secret}" is not allowed because '
                    f"service account {account.metadata.name} does not reference that secret"
                )
    return None
