"""Which Secrets a pod spec references (podutil.VisitPodSecretNames), as plain dict walking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")

# volume type -> the key under it that names a secret (a string, or an object with "name")
_VOLUME_SECRET_KEYS = {
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


def _items(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _name(ref: Any) -> str:
    if isinstance(ref, str):
        return ref
    if isinstance(ref, dict) and isinstance(ref.get("name"), str):
        return str(ref["name"])
    return ""


def env_secret_refs(container: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """("envVar <name>" | "envFrom", secret name) for each secret a container's environment uses."""
    for env in _items(container.get("env")):
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if isinstance(ref, dict):
            yield f"envVar {env.get('name', '')}", _name(ref)
    for env_from in _items(container.get("envFrom")):
        ref = env_from.get("secretRef")
        if isinstance(ref, dict):
            yield "envFrom", _name(ref)


def volume_secret_names(volume: dict[str, Any]) -> Iterator[str]:
    for volume_type, key in _VOLUME_SECRET_KEYS.items():
        spec = volume.get(volume_type)
        if isinstance(spec, dict) and spec.get(key):
            yield _name(spec[key])
    projected = volume.get("projected")
    if isinstance(projected, dict):
        for source in _items(projected.get("sources")):
            if isinstance(source.get("secret"), dict):
                yield _name(source["secret"])


def pod_secret_names(spec: dict[str, Any]) -> Iterator[str]:
    """Every secret name a pod spec references, in any container, volume or pull secret. An empty
    name is no reference (VisitPodSecretNames skips it; validation only warns of `name: ""`)."""
    return (name for name in _all_secret_names(spec) if name)


def _all_secret_names(spec: dict[str, Any]) -> Iterator[str]:
    for ref in _items(spec.get("imagePullSecrets")):
        yield _name(ref)
    for kind in CONTAINER_KINDS:
        for container in _items(spec.get(kind)):
            for _, name in env_secret_refs(container):
                yield name
    for volume in _items(spec.get("volumes")):
        yield from volume_secret_names(volume)
