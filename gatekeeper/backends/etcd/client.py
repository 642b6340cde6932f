"""A connection to an etcd v3 cluster (3.4 or later) through its JSON gRPC gateway, with failover.

etcd3gw speaks the gateway over plain HTTP(S) with `requests`: synchronous like the store interface,
TLS with a CA and a client certificate, no gRPC stack. It talks to one member, so this module keeps
one etcd3gw client per member of `--store etcd://A,B,C` and moves to the next member when one does
not answer or says it cannot serve now (no leader, leader changed, request timed out: gRPC
Unavailable, which the gateway sends as HTTP 503). Any other refusal is final.

Retrying on another member is safe for what gatekeeper sends: puts and deletes are idempotent, and
every quota charge is a transaction guarded by compares that a second delivery fails
(gatekeeper/backends/etcd/ledger.py).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from etcd3gw import exceptions
from etcd3gw.client import Etcd3Client
from requests.adapters import HTTPAdapter

from gatekeeper.admission.state import StoreError
from gatekeeper.backends.etcd.options import EtcdOptions

API_PATH = "/v3/"  # etcd >= 3.4; naming it saves etcd3gw a version request per client
MAX_TXN_OPS = 100  # etcd's --max-txn-ops defaults to 128
POOL_SIZE = 64  # one HTTP connection per request thread at most (uvicorn's pool has 40)
RETRY_PAUSE = 0.1


class EtcdUnavailable(StoreError):
    """No member of the etcd cluster answered in time."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    version: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    responses: list[dict[str, Any]]
    revision: int


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end for a prefix)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


# What a gateway answer of the wrong shape raises when it is read (a proxy's page, a newer etcd)
MALFORMED_ANSWER = (KeyError, TypeError, ValueError, AttributeError)


def key_values(range_response: dict[str, Any]) -> list[KeyValue]:
    try:
        return [
            KeyValue(
                key=base64.b64decode(kv["key"]),
                value=base64.b64decode(kv.get("value", "")),
                mod_revision=int(kv.get("mod_revision", 0)),
                version=int(kv.get("version", 0)),
            )
            for kv in range_response.get("kvs", [])
        ]
    except MALFORMED_ANSWER as exc:
        raise StoreError(f"etcd answered a range of the wrong shape: {type(exc).__name__}") from None


def revision_of(response: dict[str, Any]) -> int:
    try:
        return int(response.get("header", {}).get("revision", 0))
    except MALFORMED_ANSWER as exc:
        raise StoreError(f"etcd answered without a revision: {type(exc).__name__}") from None


def _session(options: EtcdOptions) -> requests.Session:
    session = requests.Session()
    # REQUESTS_CA_BUNDLE and the like would override session.verify (requests' own precedence), and
    # etcd is reached directly, never through an HTTP proxy from the environment
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_maxsize=POOL_SIZE))
    session.mount("https://", HTTPAdapter(pool_maxsize=POOL_SIZE))
    if options.cafile:
        session.verify = str(options.cafile)
    if options.certfile and options.keyfile:
        session.cert = (str(options.certfile), str(options.keyfile))
    return session


def short(text: str) -> str:
    """The cause at the end of requests' and urllib3's long chain of wrapped messages."""
    for marker in ("Failed to establish a new connection: ", "Read timed out", "Connection aborted"):
        if marker in text:
            return text[text.index(marker) :].rstrip("'\")")
    return text[:300]


def _reason(exc: exceptions.Etcd3Exception) -> str:
    """etcd's own message from an error response (JSON with "message"), else what requests said."""
    detail = exc.detail_text or ""
    try:
        message = orjson.loads(detail).get("message")
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    return str(message or short(detail) or type(exc).__name__)


class EtcdClient:
    def __init__(self, options: EtcdOptions) -> None:
        if not options.endpoints:
            raise StoreError("etcd: no endpoints given")
        if bool(options.certfile) != bool(options.keyfile):
            raise StoreError("etcd: --etcd-certfile and --etcd-keyfile go together")
        self.options = options
        self._members = [
            Etcd3Client(
                host=host,
                port=port,
                protocol=options.scheme,
                timeout=options.timeout,
                api_path=API_PATH,
                session=_session(options),
            )
            for host, port in options.endpoints
        ]
        self._preferred = 0

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to the gateway's `path` on a member that answers; EtcdUnavailable when, for
        `options.timeout` seconds, none does."""
        deadline = time.monotonic() + self.options.timeout
        while True:
            last = ""
            for index in self._order():
                member = self._members[index]
                try:
                    result: dict[str, Any] = member.post(member.get_url(path), json=body)
                except (exceptions.ConnectionFailedError, exceptions.ConnectionTimeoutError) as exc:
                    last = f"{member.host}:{member.port}: {_reason(exc)}"
                    continue
                except exceptions.Etcd3Exception as exc:
                    raise StoreError(f"etcd refused {path}: {_reason(exc)}") from None
                except (requests.RequestException, ValueError) as exc:  # a broken or non-JSON answer
                    last = f"{member.host}:{member.port}: {short(str(exc))}"
                    continue
                self._preferred = index
                return result
            if time.monotonic() >= deadline:
                raise EtcdUnavailable(f"etcd is unavailable ({self.options.describe()}): {last}")
            time.sleep(RETRY_PAUSE)

    def watch_stream(self, key: bytes, range_end: bytes, read_timeout: float) -> requests.Response:
        """An open watch on [key, range_end) from now on, on the first member that accepts it."""
        body = {"create_request": {"key": b64(key), "range_end": b64(range_end)}}
        last = ""
        for index in self._order():
            member = self._members[index]
            try:
                response = member.session.post(
                    member.get_url("/watch"),
                    json=body,
                    stream=True,
                    timeout=(self.options.timeout, read_timeout),
                )
            except requests.RequestException as exc:
                last = f"{member.host}:{member.port}: {short(str(exc))}"
                continue
            if response.status_code == 200:
                return response
            last = f"{member.host}:{member.port}: HTTP {response.status_code}: {response.text[:200]}"
            response.close()
        raise EtcdUnavailable(f"etcd is unavailable ({self.options.describe()}): {last}")

    def get(self, key: bytes) -> KeyValue | None:
        found = key_values(self.call("/kv/range", {"key": b64(key)}))
        return found[0] if found else None

    def put(self, key: bytes, value: bytes) -> int:
        """The revision of the write."""
        return revision_of(self.call("/kv/put", {"key": b64(key), "value": b64(value)}))

    def delete(self, key: bytes) -> int:
        return revision_of(self.call("/kv/deleterange", {"key": b64(key)}))

    def range_prefix(self, prefix: bytes, revision: int = 0) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` (at `revision`, or now), and the revision read."""
        body: dict[str, Any] = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        if revision:
            body["revision"] = revision
        response = self.call("/kv/range", body)
        return key_values(response), revision_of(response)

    def txn(
        self,
        compare: Sequence[dict[str, Any]],
        success: Sequence[dict[str, Any]],
        failure: Sequence[dict[str, Any]] = (),
    ) -> TxnResult:
        response = self.call(
            "/kv/txn", {"compare": list(compare), "success": list(success), "failure": list(failure)}
        )
        return TxnResult(
            succeeded=bool(response.get("succeeded", False)),
            responses=list(response.get("responses", [])),
            revision=revision_of(response),
        )

    def grant_lease(self, ttl: int) -> int:
        try:
            return int(self.call("/lease/grant", {"TTL": ttl, "ID": 0})["ID"])
        except MALFORMED_ANSWER:
            raise StoreError("etcd granted a lease without its ID") from None

    def close(self) -> None:
        for member in self._members:
            member.session.close()

    def _order(self) -> list[int]:
        """Members to try, starting with the one that answered last."""
        first = self._preferred
        return [(first + i) % len(self._members) for i in range(len(self._members))]


def put_op(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    request: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        request["lease"] = lease
    return {"request_put": request}


def delete_op(key: bytes) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


def range_op(key: bytes) -> dict[str, Any]:
    return {"request_range": {"key": b64(key)}}


def mod_revision_is(key: bytes, revision: int) -> dict[str, Any]:
    """A compare that holds while `key` is unchanged since `revision` (0: while it does not exist)."""
    return {"key": b64(key), "result": "EQUAL", "target": "MOD", "mod_revision": revision}


def absent(key: bytes) -> dict[str, Any]:
    return {"key": b64(key), "result": "EQUAL", "target": "VERSION", "version": 0}
