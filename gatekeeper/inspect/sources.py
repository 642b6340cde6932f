"""Where `gatekeeper audit` reads objects: a dump (file or stdin) or a live cluster, in two passes.

Pass one feeds the Context (namespaces, LimitRanges, quotas, service accounts: small); pass two
streams every object through the checks. Memory holds the context and one object (a dump) or one
page of a list (a cluster), whatever the cluster's size:

* a JSON dump (`kubectl get ... -A -o json`: a List, or one object, or JSON lines, or any run of
  JSON values) is decoded one item at a time from a 1 MiB window, and each object spooled to a
  temporary file (disk, not memory) as a JSON line for pass two, so stdin works as well;
* a YAML dump is parsed whole (a List in YAML is one document): use JSON for large clusters;
* a cluster is listed page by page (`limit`/`continue`), as the reflectors list it.

A Secret's data never goes further than the reader: it is stripped as it is decoded.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote

import orjson

from gatekeeper.admission.state import JSONObject
from gatekeeper.backends.kube.client import ApiError, KubeClient, api_error
from gatekeeper.backends.storable import storable
from gatekeeper.errors import InvalidInput
from gatekeeper.k8s.yamltext import YAMLTextError, documents

CHUNK = 1 << 20
MAX_OBJECT = 16 << 20  # no API object is near this (etcd's default request limit is 1.5 MiB)
PAGE_SIZE = 500
_SPACE = re.compile(r"[ \t\n\r]*")
Item = tuple[str, JSONObject]  # (where the input holds it, the object)


class SourceError(InvalidInput):
    """The input cannot be read; the message names where, never the content."""


class Source(Protocol):
    def context_objects(self) -> Iterator[Item]: ...

    def all_objects(self) -> Iterator[Item]: ...

    def covered(self, seen: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (group, resource)s whose every object pass two sees (a quota recounts only these)."""
        ...

    def close(self) -> None: ...


def stripped(obj: JSONObject) -> JSONObject:
    """A Secret without its data (gatekeeper.admission.state.storable); a ConfigMap without its data."""
    kind = obj.get("kind")
    if kind == "ConfigMap":
        return {key: value for key, value in obj.items() if key not in ("data", "binaryData")}
    return storable(obj) if kind == "Secret" else obj


# -- dumps --------------------------------------------------------------------------------------


class DumpSource:
    """A dump file, or stdin ("-"), read once: pass one decodes it and spools every (stripped)
    object as a JSON line to a temporary file, which pass two reads back (orjson, much faster)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        if path != "-" and not Path(path).is_file():
            raise SourceError(f"{path}: no such file")
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()

    def context_objects(self) -> Iterator[Item]:
        spool = self._spool
        for item in self._read():
            try:
                spool.write(orjson.dumps(item))
            except TypeError:  # orjson's integers stop at 64 bits, as every Kubernetes field does
                raise SourceError(f"{item[0]}: a number beyond 64 bits, which no API field holds") from None
            spool.write(b"\n")
            yield item

    def all_objects(self) -> Iterator[Item]:
        self._spool.seek(0)
        for line in self._spool:
            where, obj = orjson.loads(line)
            yield where, obj

    def covered(self, seen: set[tuple[str, str]]) -> set[tuple[str, str]]:
        # A kind with no object in the dump may be a kind left out of the dump: not recounted.
        return seen

    def close(self) -> None:
        self._spool.close()

    def _read(self) -> Iterator[Item]:
        with self._open() as stream:
            try:
                first = _first_char(stream)
                if first in ("{", "["):
                    yield from _json_items(stream, self.name, first)
                elif first:
                    yield from _yaml_items(first + stream.read(), self.name)
            except UnicodeDecodeError:
                raise SourceError(f"{self.name}: not UTF-8 text") from None

    def _open(self) -> IO[str]:
        try:
            if self.path == "-":
                return open(sys.stdin.fileno(), encoding="utf-8-sig", closefd=False)
            return open(self.path, encoding="utf-8-sig")
        except OSError as exc:
            raise SourceError(f"{self.name}: {exc.strerror or exc}") from None


def _first_char(stream: IO[str]) -> str:
    """The first character that is not white space, consumed ("" for an empty input)."""
    while chunk := stream.read(1):
        if not chunk.isspace():
            return chunk
    return ""


def _yaml_items(text: str, name: str) -> Iterator[Item]:
    try:
        for index, (_line, doc) in enumerate(documents(text)):
            if doc is not None:
                yield from _unpacked(doc, f"{name}: document {index}")
    except YAMLTextError as exc:
        raise SourceError(f"{name}: {exc}") from None


def _unpacked(doc: Any, where: str) -> Iterator[Item]:
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        for i, item in enumerate(doc["items"]):
            yield _item(item, f"{where}, items[{i}]")
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            yield _item(item, f"{where}[{i}]")
    else:
        yield _item(doc, where)


def _item(value: Any, where: str) -> Item:
    if not isinstance(value, dict):
        raise SourceError(f"{where}: expected a Kubernetes object, got {type(value).__name__}")
    return where, stripped(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


class _Window:
    """JSON values decoded one at a time from a sliding window over a text stream."""

    def __init__(self, stream: IO[str], name: str, start: str = "") -> None:
        self.stream, self.name = stream, name
        self.buf, self.pos, self.offset, self.eof = start, 0, 0, False

    def _fill(self) -> bool:
        chunk = self.stream.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.offset += self.pos
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-space character ("" at the end), not consumed."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str) -> str:
        found = self.peek()
        if not found or found not in chars:
            self.fail(f"expected {' or '.join(repr(c) for c in chars)}")
        self.pos += 1
        return found

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except (json.JSONDecodeError, ValueError, RecursionError) as exc:
                if len(self.buf) - self.pos > MAX_OBJECT:
                    self.fail(f"no object ends within {MAX_OBJECT >> 20} MiB ({_reason(exc)})")
                if self.eof or not self._fill():
                    self.fail(_reason(exc))
                continue
            if end == len(self.buf) and not self.eof and self._fill():
                continue  # a number may go on in the next chunk
            self.pos = end
            return value

    def fail(self, problem: str) -> None:
        raise SourceError(f"{self.name}: not valid JSON at character {self.offset + self.pos}: {problem}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg  # "Expecting ',' delimiter": never the text itself
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "a value that is not JSON (NaN or Infinity)" if "not JSON" in str(exc) else "malformed"


def _json_items(stream: IO[str], name: str, first: str) -> Iterator[Item]:
    window = _Window(stream, name, first)
    index = 0
    while window.peek():
        where = f"{name}: document {index}"
        if window.peek() == "{":
            yield from _object_or_list(window, where)
        elif window.peek() == "[":
            window.expect("[")
            yield from _array(window, where)
        else:
            window.fail("expected an object or a list")
        index += 1


def _object_or_list(window: _Window, where: str) -> Iterator[Item]:
    """A top-level object, key by key: its `items` array is streamed, anything else is kept."""
    window.expect("{")
    kept: JSONObject = {}
    listed = False
    if window.peek() == "}":
        window.expect("}")
    else:
        while True:
            key = window.value()
            window.expect(":")
            if key == "items" and window.peek() == "[":
                window.expect("[")
                listed = True
                yield from _array(window, f"{where}, items", _item_kind(kept))
            else:
                kept[str(key)] = window.value()
            if window.expect(",}") == "}":
                break
    if not listed:
        yield _item(kept, where)


def _item_kind(list_fields: JSONObject) -> JSONObject:
    """What the items of a typed list (an API server's PodList, whose items name no kind) are:
    known when `kind` comes before `items`, as the API server writes them."""
    kind, api_version = list_fields.get("kind"), list_fields.get("apiVersion")
    if not isinstance(kind, str) or not kind.endswith("List") or kind == "List" or not api_version:
        return {}
    return {"kind": kind.removesuffix("List"), "apiVersion": api_version}


def _array(window: _Window, where: str, defaults: JSONObject | None = None) -> Iterator[Item]:
    if window.peek() == "]":
        window.expect("]")
        return
    index = 0
    while True:
        value = window.value()
        if defaults and isinstance(value, dict):
            value = {**defaults, **value}
        yield _item(value, f"{where}[{index}]")
        index += 1
        if window.expect(",]") == "]":
            return


# -- a live cluster -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collection:
    kind: str
    api_version: str
    path: str  # every namespace's objects

    @property
    def key(self) -> tuple[str, str]:
        return self.api_version.rpartition("/")[0], self.path.rsplit("/", 1)[1]


def _core(kind: str, resource: str) -> Collection:
    return Collection(kind, "v1", f"/api/v1/{resource}")


CONTEXT = (
    _core("Namespace", "namespaces"),
    _core("LimitRange", "limitranges"),
    _core("ResourceQuota", "resourcequotas"),
    _core("ServiceAccount", "serviceaccounts"),
)
# What quota's evaluators measure beyond object counts, and what pods' checks read; other
# count/<resource>.<group> quotas are not recounted from a live cluster.
COUNTED = (
    _core("Pod", "pods"),
    _core("Service", "services"),
    _core("Secret", "secrets"),
    _core("ConfigMap", "configmaps"),
    _core("PersistentVolumeClaim", "persistentvolumeclaims"),
    *CONTEXT[1:],
)


class ClusterSource:
    """A live cluster through the kubeconfig's credentials: lists only, paginated; nothing written."""

    def __init__(self, client: KubeClient, page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.page_size = page_size

    def context_objects(self) -> Iterator[Item]:
        for collection in CONTEXT:
            yield from self._pages(collection)

    def all_objects(self) -> Iterator[Item]:
        for collection in COUNTED:
            yield from self._pages(collection)

    def covered(self, seen: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {collection.key for collection in COUNTED}

    def close(self) -> None:
        self.client.close()

    def _pages(self, collection: Collection) -> Iterator[Item]:
        token = ""
        while True:
            query = [("limit", str(self.page_size)), *([("continue", token)] if token else [])]
            response = self.client.request("GET", collection.path, query)
            if response.status != 200:
                error = api_error("GET", collection.path, response.status, response.body)
                raise SourceError(_list_error(error))
            for item in response.body.get("items") or []:
                if isinstance(item, dict):
                    item.setdefault("kind", collection.kind)
                    item.setdefault("apiVersion", collection.api_version)
                    yield _where(collection, item), stripped(item)
            token = str((response.body.get("metadata") or {}).get("continue") or "")
            if not token:
                return


def _where(collection: Collection, item: JSONObject) -> str:
    metadata = item.get("metadata") or {}
    ns, name = quote(str(metadata.get("namespace") or "")), quote(str(metadata.get("name") or ""))
    resource = collection.path.rsplit("/", 1)[1]
    return f"{collection.path.rsplit('/', 1)[0]}/namespaces/{ns}/{resource}/{name}" if ns else collection.path


def _list_error(error: ApiError) -> str:
    if error.status == 410:
        return f"{error}: the list expired while it was read (a very large collection); run the audit again"
    return str(error)
