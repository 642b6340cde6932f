"""The connection to the API server: kubeconfig or in-cluster configuration, and raw JSON requests.

The official Kubernetes Python client (`kubernetes`) loads the configuration exactly as kubectl
reads it (contexts, client certificates, tokens, exec plugins, the in-cluster service account with
its rotating token) and owns the TLS connection pool. Requests go through its transport as raw
JSON: the plugins read plain objects, and a Secret's data must be dropped before anything else
holds it, which generated models would not allow.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.config.config_exception import ConfigException

from gatekeeper.admission.state import StoreError
from gatekeeper.errors import InvalidFile
from gatekeeper.k8s import yamltext

IN_CLUSTER = "in-cluster"  # --kubeconfig value that asks for the pod's service account
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 15.0


class KubeConfigError(InvalidFile):
    """The kubeconfig (or the in-cluster configuration) cannot be loaded."""


class ApiError(StoreError):
    """The API server answered with an error status, or could not be reached."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: dict[str, Any]


class KubeClient:
    """Raw JSON requests to one API server, with the credentials of one kubeconfig context."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._api = ApiClient(_configuration(source))

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def request(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Response:
        """One request; an error status comes back as a Response, a transport failure as ApiError."""
        raw = self._send(method, path, query, body, (CONNECT_TIMEOUT, timeout))
        try:
            data = raw.response.data
        except _TRANSPORT_ERRORS as exc:
            raise ApiError(f"{method} {path}: the answer was cut short: {exc}") from None
        finally:
            raw.response.release_conn()
        try:
            decoded = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            raise ApiError(f"{method} {path}: the API server answered {raw.status} with no JSON") from None
        return Response(int(raw.status), decoded if isinstance(decoded, dict) else {})

    @contextlib.contextmanager
    def watch(
        self, path: str, query: Sequence[tuple[str, str]], read_timeout: float
    ) -> Iterator[Iterator[bytes]]:
        """The open watch's lines; ApiError when the API server refuses it (410 Gone included).
        The connection is closed on leaving, however the watch ends."""
        raw = self._send("GET", path, query, None, (CONNECT_TIMEOUT, read_timeout))
        response = raw.response
        try:
            if raw.status != 200:
                raise api_error("GET", path, int(raw.status), _decode_status(response.data))
            yield _lines(response, path)
        finally:
            # Closed, never handed back to the pool: a watch left mid-stream still has chunks on
            # the wire, and the next request on that connection would read them as its answer.
            response.close()

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Mapping[str, Any] | None,
        timeout: tuple[float, float],
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:  # serializing runs the token refresh (an exec plugin, the in-cluster token file)
            serialized = self._api.param_serialize(
                method,
                path,
                query_params=list(query),
                header_params=headers,
                body=dict(body) if body is not None else None,
                auth_settings=["BearerToken"],
            )
            return self._api.call_api(*serialized, _request_timeout=timeout)
        except _TRANSPORT_ERRORS as exc:
            raise ApiError(f"{method} {path}: cannot reach the API server at {self.host}: {exc}") from None


def _lines(response: Any, path: str) -> Iterator[bytes]:
    buffer = b""
    try:
        for chunk in response.stream(amt=None, decode_content=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            yield from (line for line in lines if line.strip())
    except _TRANSPORT_ERRORS as exc:
        raise ApiError(f"watch {path}: {type(exc).__name__}: {exc}") from None


def api_error(method: str, path: str, status: int, body: Mapping[str, Any]) -> ApiError:
    message = str(body.get("message") or "") or f"status {status}"
    return ApiError(f"{method} {path}: {status} {message}", status, str(body.get("reason") or ""))


def _decode_status(data: bytes | None) -> dict[str, Any]:
    try:
        decoded = orjson.loads(data or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _configuration(source: str) -> Configuration:
    configuration = Configuration()
    try:
        if source == IN_CLUSTER:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise KubeConfigError(f"--kubeconfig {source}: no such file")
            _load_kubeconfig(path, configuration)
    except ConfigException as exc:
        raise KubeConfigError(f"--kubeconfig {source}: {exc}") from None
    configuration.retries = False  # the reflector and the ledger decide when to try again
    return configuration


def _load_kubeconfig(path: Path, configuration: Configuration) -> None:
    """The client's loader, its errors worded without the file's content: it raises YAML, UTF-8,
    base64 and type errors besides ConfigException, and its messages can quote a user entry,
    token and all."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigException("not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigException(f"not YAML: {yamltext.describe(exc)}") from None
    except RecursionError:
        raise ConfigException("nested too deeply") from None
    try:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(path), client_configuration=configuration
        )
    except Exception as exc:
        reason = _without_values(str(exc) or type(exc).__name__, document)
        raise ConfigException(f"not a usable kubeconfig: {reason}") from None


def _without_values(message: str, document: Any) -> str:
    """`message` with every value the file holds (4 characters or more) replaced by "...": the
    keys name what is wrong, the values may be credentials."""
    for value in sorted(_values(document), key=len, reverse=True):
        message = message.replace(value, "...")
    return message[:300]


def _values(document: Any) -> set[str]:
    """The scalar values of a YAML document, each container visited once (aliases share them)."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            if id(node) not in seen:
                seen.add(id(node))
                stack.extend(node.values() if isinstance(node, dict) else node)
        elif node is not None and len(text := str(node)) >= 4:
            found.add(text)
    return found


def default_source() -> str | None:
    """In a pod, the in-cluster configuration; elsewhere nothing (no live state unless asked)."""
    if (
        os.environ.get("KUBERNETES_SERVICE_HOST")
        and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file()
    ):
        return IN_CLUSTER
    return None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What the transport raises: urllib3's errors, the socket's, and the client's own wrappers
    (an SSL failure comes back as ApiException with status 0; a failed token refresh as
    ConfigException)."""
    import urllib3.exceptions
    from kubernetes.client.exceptions import OpenApiException

    return (urllib3.exceptions.HTTPError, OSError, OpenApiException, ConfigException)


_TRANSPORT_ERRORS = _transport_errors()
