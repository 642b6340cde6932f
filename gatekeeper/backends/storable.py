"""What every backend keeps of an object: a Secret without its data, on every write path; and
reading a stored value back, where anything but a JSON object is the store's fault (StoreError)."""

from __future__ import annotations

from typing import Any

import orjson

from gatekeeper.admission.state import JSONObject, StoreError

# What the plugins read of a Secret (the ServiceAccount plugin: which secrets exist, their type and
# the service-account annotations); everything else, data and stringData above all, is dropped.
SECRET_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
SERVICE_ACCOUNT_ANNOTATIONS = "kubernetes.io/service-account."


def strip_secret(obj: JSONObject) -> JSONObject:
    """Name, type and the service-account annotations; an annotation such as kubectl's
    last-applied-configuration would carry the data itself, so no other is kept."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    kept = {key: metadata[key] for key in SECRET_METADATA if key in metadata}
    annotations = metadata.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    kept["annotations"] = {
        key: value for key, value in annotations.items() if key.startswith(SERVICE_ACCOUNT_ANNOTATIONS)
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": kept, "type": obj.get("type", "Opaque")}


def storable(obj: JSONObject) -> JSONObject:
    """The object as every store keeps it: a Secret without its data (strip_secret), others as given.
    Every write path of every store goes through here, so a Secret's values are never at rest."""
    return strip_secret(obj) if obj.get("kind") == "Secret" else obj


def decode_stored(raw: bytes | str, refused: str) -> dict[str, Any]:
    """The JSON object a backend stored as `raw`; StoreError(`refused`) if it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise StoreError(refused)
    return value
