"""Shape checks for the objects inside an AdmissionReview, standing in for kube-apiserver's typed
decoding: a field of the wrong JSON type is a 400 naming its path, never a plugin crash; and the
typed read-only views of the stored objects the admission plugins read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gatekeeper.k8s.fields import InvalidObject

# A shape maps a key to (expected JSON type, shape of each element or of the value, or None).
Shape = dict[str, tuple[str, "Shape | None"]]

OBJECT, ARRAY, STRING, BOOLEAN = "object", "array", "string", "boolean"

METADATA: Shape = {
    "name": (STRING, None),
    "namespace": (STRING, None),
    "generateName": (STRING, None),
    "annotations": (OBJECT, None),
    "labels": (OBJECT, None),
}
ANY_OBJECT: Shape = {"metadata": (OBJECT, METADATA)}

_PYTHON_TYPES: dict[str, type] = {OBJECT: dict, ARRAY: list, STRING: str, BOOLEAN: bool}


def check_object(obj: dict[str, Any], path: str) -> None:
    """InvalidObject naming the first metadata field of `obj` whose JSON type is not what Kubernetes
    decodes (a pod is checked by decoding its view, Pod.decode)."""
    _check(obj, ANY_OBJECT, path)


def _check(value: dict[str, Any], shape: Shape, path: str) -> None:
    for key, (expected, inner) in shape.items():
        child: Any = value.get(key)
        if child is None:
            continue
        where = f"{path}.{key}"
        if not _is(child, expected):
            raise InvalidObject(f"{where}: expected {_article(expected)}, got {_json_type(child)}")
        if inner is None:
            continue
        if expected == ARRAY:
            for index, item in enumerate(child):
                if not isinstance(item, dict):
                    raise InvalidObject(f"{where}[{index}]: expected an object, got {_json_type(item)}")
                _check(item, inner, f"{where}[{index}]")
        else:
            _check(child, inner, where)


def _is(value: Any, expected: str) -> bool:
    return isinstance(value, _PYTHON_TYPES[expected])


def _article(expected: str) -> str:
    return f"an {expected}" if expected in (OBJECT, ARRAY) else f"a {expected}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float)):
        return "number"
    return {dict: OBJECT, list: ARRAY, str: STRING, type(None): "null"}.get(type(value), type(value).__name__)


_EMPTY: Mapping[str, Any] = MappingProxyType({})
AUTOMOUNT = "automountServiceAccountToken"


# -- typed read-only views of the stored kinds the admission plugins read --------------------------
#
# Each is decoded from a stored object once, where a plugin takes it from the store; a field of the
# wrong type is an InvalidObject naming the object and the field (a stored object is not the
# caller's: the plugin answers it as an internal error). Absent fields read as Kubernetes' zero.


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str]

    @classmethod
    def decode(cls, obj: Mapping[str, Any], at: str) -> ObjectMeta:
        """`at` prefixes each error's field path: "serviceaccount team/ci: "."""
        metadata = _typed(obj.get("metadata"), dict, at, "metadata") or {}
        annotations = _typed(metadata.get("annotations"), dict, f"{at}metadata.", "annotations") or {}
        for key, value in annotations.items():
            _typed(value, str, f"{at}metadata.annotations.", key)
        return cls(
            namespace=_typed(metadata.get("namespace"), str, f"{at}metadata.", "namespace") or "",
            name=_typed(metadata.get("name"), str, f"{at}metadata.", "name") or "",
            uid=_typed(metadata.get("uid"), str, f"{at}metadata.", "uid") or "",
            annotations=MappingProxyType(annotations) if annotations else _EMPTY,
        )


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    metadata: ObjectMeta
    automount_token: bool | None  # automountServiceAccountToken; None: not set
    secrets: tuple[str, ...]  # the names in secrets[]
    image_pull_secrets: tuple[str, ...]  # the names in imagePullSecrets[]

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> ServiceAccount:
        at = _where("serviceaccount", obj)
        return cls(
            metadata=ObjectMeta.decode(obj, at),
            automount_token=_typed(obj.get(AUTOMOUNT), bool, at, AUTOMOUNT),
            secrets=_ref_names(obj, "secrets", at),
            image_pull_secrets=_ref_names(obj, "imagePullSecrets", at),
        )


@dataclass(frozen=True, slots=True)
class Secret:
    metadata: ObjectMeta
    type: str

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> Secret:
        at = _where("secret", obj)
        return cls(ObjectMeta.decode(obj, at), _typed(obj.get("type"), str, at, "type") or "")


@dataclass(frozen=True, slots=True)
class Namespace:
    metadata: ObjectMeta
    phase: str  # status.phase: "Active", "Terminating", or "" when not reported

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> Namespace:
        at = _where("namespace", obj)
        status = _typed(obj.get("status"), dict, at, "status") or {}
        phase = _typed(status.get("phase"), str, f"{at}status.", "phase") or ""
        return cls(ObjectMeta.decode(obj, at), phase)


def _where(kind: str, obj: Mapping[str, Any]) -> str:
    """The error prefix naming a stored object: "serviceaccount team/ci: ", "namespace team: "."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    namespace = metadata.get("namespace")
    return f"{kind} {f'{namespace}/' if namespace else ''}{metadata.get('name', '')}: "


def _ref_names(obj: Mapping[str, Any], key: str, at: str) -> tuple[str, ...]:
    """The `name` of each entry of a list of object references (LocalObjectReference)."""
    refs = _items(obj, key, at)
    return tuple(_typed(ref.get("name"), str, f"{where}.", "name") or "" for ref, where in refs)


# -- the pod, as the admission plugins read it ------------------------------------------------------
#
# Decoded once at the edge from a review's object (and again only after a mutation changed it):
# a field the plugins read that has the wrong JSON type is an InvalidObject naming its path.

# volume type -> the key under it that names a secret (a string, or an object with "name"),
# as podutil.VisitPodSecretNames visits them
VOLUME_SECRET_KEYS = {
    "azureFile": "secretName",
    "cephfs": "secretRef",
    "cinder": "secretRef",
    "flexVolume": "secretRef",
    "rbd": "secretRef",
    "secret": "secretName",
    "scaleIO": "secretRef",
    "iscsi": "secretRef",
    "storageos": "secretRef",
    "csi": "nodePublishSecretRef",
}


@dataclass(frozen=True, slots=True)
class SecretUse:
    how: str  # "envVar NAME" or "envFrom", as Kubernetes' messages name it
    secret: str


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    mount_paths: tuple[str, ...]
    env_secrets: tuple[SecretUse, ...]
    security_context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    secret_name: str | None  # secret.secretName of a secret volume, else None
    secret_names: tuple[str, ...]  # every secret the volume names, any volume type or projection
    projects_token: bool  # a projected source is a serviceAccountToken


@dataclass(frozen=True, slots=True)
class PodSpec:
    service_account_name: str
    automount_token: bool | None
    image_pull_secrets: tuple[str, ...]
    volumes: tuple[Volume, ...]
    init_containers: tuple[Container, ...]
    containers: tuple[Container, ...]
    ephemeral_containers: tuple[Container, ...]
    security_context: Mapping[str, Any]

    def secret_names(self) -> Iterator[str]:
        """Every secret the spec references (VisitPodSecretNames); an empty name is no reference."""
        named = (
            *self.image_pull_secrets,
            *(use.secret for kind in (self.init_containers, self.containers, self.ephemeral_containers)
              for container in kind for use in container.env_secrets),
            *(name for volume in self.volumes for name in volume.secret_names),
        )
        return (name for name in named if name)


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    generate_name: str
    annotations: Mapping[str, Any]
    spec: PodSpec

    @classmethod
    def decode(cls, obj: Mapping[str, Any], path: str = "") -> Pod:
        """The view of a pod object; `path` prefixes the field paths of errors ("request.object")."""
        # Every request's pod is decoded, so absent fields cost a dict lookup and nothing more:
        # a path string is built only for what is present, a message only for what is wrong.
        at = f"{path}." if path else ""
        metadata = _typed(obj.get("metadata"), dict, at, "metadata") or {}
        where = f"{at}metadata."
        for key in ("name", "namespace", "generateName"):
            _typed(metadata.get(key), str, where, key)
        _typed(metadata.get("labels"), dict, where, "labels")
        annotations = _typed(metadata.get("annotations"), dict, where, "annotations")
        return cls(
            name=metadata.get("name") or "",
            generate_name=metadata.get("generateName") or "",
            annotations=MappingProxyType(annotations or {}),
            spec=_pod_spec(_typed(obj.get("spec"), dict, at, "spec") or {}, f"{at}spec."),
        )


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """metadata.annotations of any object, read-only; absent or null is empty."""
    metadata = _typed(obj.get("metadata"), dict, "", "metadata") or {}
    return MappingProxyType(_typed(metadata.get("annotations"), dict, "metadata.", "annotations") or {})


def _pod_spec(spec: Mapping[str, Any], at: str) -> PodSpec:
    _requirements(spec, at)
    context = _typed(spec.get("securityContext"), dict, at, "securityContext")
    volumes = _items(spec, "volumes", at)
    return PodSpec(
        service_account_name=_typed(spec.get("serviceAccountName"), str, at, "serviceAccountName") or "",
        automount_token=_typed(spec.get(AUTOMOUNT), bool, at, AUTOMOUNT),
        image_pull_secrets=tuple(
            _typed(ref.get("name"), str, f"{where}.", "name") or ""
            for ref, where in _items(spec, "imagePullSecrets", at)
        ),
        volumes=tuple(_volume(volume, f"{where}.") for volume, where in volumes),
        init_containers=_containers(spec, "initContainers", at),
        containers=_containers(spec, "containers", at),
        ephemeral_containers=_containers(spec, "ephemeralContainers", at),
        security_context=MappingProxyType(context) if context else _EMPTY,
    )


def _containers(spec: Mapping[str, Any], key: str, at: str) -> tuple[Container, ...]:
    return tuple(_container(container, f"{where}.") for container, where in _items(spec, key, at))


def _container(container: Mapping[str, Any], at: str) -> Container:
    _requirements(container, at)
    uses = []
    for env, where in _items(container, "env", at):
        _typed(env.get("name"), str, f"{where}.", "name")
        value_from = _typed(env.get("valueFrom"), dict, f"{where}.", "valueFrom")
        ref = None
        if value_from:
            ref = _typed(value_from.get("secretKeyRef"), dict, f"{where}.valueFrom.", "secretKeyRef")
        if ref is not None:
            uses.append(SecretUse(f"envVar {env.get('name', '')}", _ref_name(ref)))
    for env_from, where in _items(container, "envFrom", at):
        ref = _typed(env_from.get("secretRef"), dict, f"{where}.", "secretRef")
        if ref is not None:
            uses.append(SecretUse("envFrom", _ref_name(ref)))
    mounts = []
    for mount, where in _items(container, "volumeMounts", at):
        _typed(mount.get("name"), str, f"{where}.", "name")
        mounts.append(_typed(mount.get("mountPath"), str, f"{where}.", "mountPath") or "")
    context = _typed(container.get("securityContext"), dict, at, "securityContext")
    return Container(
        name=_typed(container.get("name"), str, at, "name") or "",
        mount_paths=tuple(mounts),
        env_secrets=tuple(uses),
        security_context=MappingProxyType(context) if context else _EMPTY,
    )


def _volume(volume: Mapping[str, Any], at: str) -> Volume:
    secret = _typed(volume.get("secret"), dict, at, "secret")
    projected = _typed(volume.get("projected"), dict, at, "projected") or {}
    sources = [source for source, _ in _items(projected, "sources", f"{at}projected.")]
    names = [_ref_name(spec[key]) for kind, key in VOLUME_SECRET_KEYS.items()
             if isinstance(spec := volume.get(kind), dict) and spec.get(key)]
    names += [_ref_name(source["secret"]) for source in sources if isinstance(source.get("secret"), dict)]
    return Volume(
        name=_typed(volume.get("name"), str, at, "name") or "",
        secret_name=str(secret.get("secretName", "")) if secret is not None else None,
        secret_names=tuple(names),
        projects_token=any(source.get("serviceAccountToken") is not None for source in sources),
    )




def _requirements(parent: Mapping[str, Any], at: str) -> None:
    resources = _typed(parent.get("resources"), dict, at, "resources")
    if resources:
        for key in ("requests", "limits"):
            _typed(resources.get(key), dict, f"{at}resources.", key)


def _ref_name(ref: Any) -> str:
    """A secret reference's name: a string itself, or an object's "name" (tolerant, as Go's zero)."""
    if isinstance(ref, str):
        return ref
    if isinstance(ref, dict) and isinstance(ref.get("name"), str):
        return str(ref["name"])
    return ""


def _typed(value: Any, expected: type, at: str, key: str) -> Any:
    """`value` (of field `key` under the path prefix `at`) if absent or of the expected type."""
    if value is None or isinstance(value, expected):
        return value
    name = {dict: OBJECT, list: ARRAY, str: STRING, bool: BOOLEAN}[expected]
    raise InvalidObject(f"{at}{key}: expected {_article(name)}, got {_json_type(value)}")


def _items(parent: Mapping[str, Any], key: str, at: str) -> list[tuple[dict[str, Any], str]]:
    """(item, its path) of an array of objects; absent, null or empty is no items."""
    items = _typed(parent.get(key), list, at, key)
    if not items:
        return []
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidObject(f"{at}{key}[{index}]: expected an object, got {_json_type(item)}")
        found.append((item, f"{at}{key}[{index}]"))
    return found
