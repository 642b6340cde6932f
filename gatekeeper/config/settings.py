"""The one settings model: every flag of `gatekeeper serve` declared once (name, type, default, help,
the kube-apiserver flag it mirrors), the offline commands taking the same declarations by name
(gatekeeper/config/flags.py builds their argparse), and the frozen object the server reads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatekeeper import paths
from gatekeeper.admission.registry import PROJECTED, parse_plugin_list
from gatekeeper.backends.etcd.options import DEFAULT_PREFIX
from gatekeeper.config.files import input_file, input_path, kubeconfig, tls_file
from gatekeeper.config.flags import Flag

# Who may call gatekeeper's own endpoints: `user:NAME` or `group:NAME` entries. The default is the
# client certificate `gatekeeper certs init` and `webhook-config` make for kube-apiserver (CN
# kube-apiserver, no O), plus for the readers the Prometheus user the README's examples scrape as.
IDENTITY_KINDS = ("user:", "group:")
IDENTITIES = "user:NAME|group:NAME,..."
MAX_HASHES_INFLIGHT = 256
KUBE = "kube-apiserver"  # Flag.mirrors: kube-apiserver's flag of the same name


def parse_identities(text: str) -> tuple[str, ...]:
    """A comma-separated flag value as identity entries (blank entries dropped, checked by Settings)."""
    return tuple(entry.strip() for entry in text.split(",") if entry.strip())


def check_identity(entry: str) -> str:
    kind = next((k for k in IDENTITY_KINDS if entry.startswith(k)), None)
    if kind is None or not entry[len(kind):]:
        raise ValueError(f"{entry!r}: expected user:NAME or group:NAME")
    return entry


def identities(text: str) -> tuple[str, ...]:
    """--webhook-callers / --metrics-readers: comma-separated user:NAME and group:NAME entries."""
    try:
        return tuple(check_identity(entry) for entry in parse_identities(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def hash_limit(text: str) -> int:
    """--max-password-hashes-inflight: a whole number from 1 to 256 (argparse words the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_HASHES_INFLIGHT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_HASHES_INFLIGHT}, got {value}")
    return value


def _cert_dir(data: dict[str, Any]) -> Path:
    return paths.cert_dir(data["data_dir"])


def _store(data: dict[str, Any]) -> str:
    return paths.store_url(data["data_dir"])


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bind_address: Annotated[str, Flag(
        "address to listen on; 0.0.0.0 (or ::) to serve a cluster", "IP", mirrors=KUBE,
    )] = "127.0.0.1"
    secure_port: Annotated[int, Field(ge=0, le=65535), Flag("HTTPS port", "PORT", mirrors=KUBE)] = 8443
    tls_cert_file: Annotated[Path | None, Flag(
        "serving certificate (PEM); with --tls-private-key-file. Default: the dev certificate in "
        "--cert-dir, made on first run", "FILE", tls_file, mirrors=KUBE,
    )] = None
    tls_private_key_file: Annotated[Path | None, Flag(
        "private key of --tls-cert-file (PEM)", "FILE", tls_file, mirrors=KUBE,
    )] = None
    client_ca_file: Annotated[Path | None, Flag(
        "CA bundle that verifies client certificates (default: the dev CA when no TLS flags are given, "
        "else none)", "FILE", tls_file, mirrors=KUBE,
    )] = None
    data_dir: Annotated[Path, Flag(
        f"gatekeeper's data directory: the dev certificates (certs/) and the default store "
        f"({paths.STORE_FILE}); ${paths.DATA_DIR_ENV} sets the default", "DIR",
    )] = Field(default_factory=paths.default_data_dir)
    cert_dir: Annotated[Path, Flag(
        "where dev certificates are made when no TLS flags are given", "DIR", mirrors=KUBE,
        derived="DATA_DIR/certs",
    )] = Field(default_factory=_cert_dir)

    token_auth_file: Annotated[Path | None, Flag(
        "static bearer tokens, kube-apiserver's CSV format (token,user,uid,\"groups\")", "FILE", input_file,
        mirrors=KUBE,
    )] = None
    basic_auth_file: Annotated[Path | None, Flag(
        "basic-auth users: password or password hash,user,uid,\"groups\"", "FILE", input_file,
        mirrors=KUBE,
    )] = None
    anonymous_auth: Annotated[bool, Flag(
        "treat unauthenticated callers as system:anonymous instead of refusing them", negatable=True,
        mirrors=KUBE,
    )] = False
    max_password_hashes_inflight: Annotated[int, Field(ge=1, le=MAX_HASHES_INFLIGHT), Flag(
        "password hash checks (basic auth) each worker runs at once, on threads of their own; one more is "
        "refused at once with 429 and Retry-After", "N", hash_limit,
    )] = 2
    api_audiences: Annotated[tuple[str, ...], Flag(
        "comma-separated audiences static tokens are valid for (TokenReview); default: defer to the API "
        "server's own", "AUDIENCE,...", comma_list, mirrors=KUBE,
    )] = ()

    authorization_policy_file: Annotated[Path, Flag(
        "ABAC policy, one rule per line, reloaded on change (default: the packaged example, "
        "gatekeeper/defaults/abac.jsonl)", "FILE", input_file, mirrors=KUBE,
    )] = Field(default_factory=paths.default_policy)
    authorization_deny_unmatched: Annotated[bool, Flag(
        "answer denied:true when no rule matches (gatekeeper is the only authorizer)",
    )] = False
    shadow_authorization_policy_file: Annotated[Path | None, Flag(
        "decide every SubjectAccessReview a second time under FILE, never changing the answer: agreements "
        "and disagreements counted in /metrics, each disagreement audited with both reasons; reloaded "
        "like the policy", "FILE", input_file,
    )] = None
    webhook_callers: Annotated[tuple[str, ...], Flag(
        "who may call /authorize, /authenticate, /mutate, /validate and /admit; the ABAC policy is not "
        "consulted for them. The default names the client certificate of `certs init`",
        IDENTITIES, identities,
    )] = ("user:kube-apiserver",)
    metrics_readers: Annotated[tuple[str, ...], Flag(
        "who may GET /metrics and /quota", IDENTITIES, identities,
    )] = ("user:kube-apiserver", "user:prometheus")

    enable_admission_plugins: Annotated[tuple[str, ...], Flag(
        "admission plugins, run in this order", "PLUGIN,...", parse_plugin_list,
        aliases=("--admission-control",), mirrors=KUBE,
    )] = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "ResourceQuota")
    kubeconfig: Annotated[str | None, Flag(
        "live state: list and watch the cluster's Namespaces, LimitRanges, ResourceQuotas, ServiceAccounts "
        "and Secrets from the API server this kubeconfig names, and charge quota on the ResourceQuota "
        "objects themselves; 'in-cluster' for the pod's service account (the default inside a pod). "
        "Without it: standalone, state from --state manifests and --store", "FILE", kubeconfig,
    )] = None
    quota_controller: Annotated[bool, Flag(
        "with --kubeconfig, for clusters without kube-controller-manager's resourcequota controller: "
        "gatekeeper syncs status.hard and recounts status.used from its own watches of pods, services, "
        "PVCs, configmaps, secrets and replication controllers (run one quota controller per cluster)",
    )] = False
    quota_sync_period: Annotated[float, Field(gt=0), Flag(
        "--quota-controller's full recount interval, as kube-controller-manager's "
        "--resource-quota-sync-period", "SECONDS",
        mirrors="kube-controller-manager --resource-quota-sync-period",
    )] = 300.0
    state: Annotated[tuple[Path, ...], Flag(
        "standalone: manifest file or folder (repeatable)", "PATH", input_path, repeat=True,
    )] = ()
    store: Annotated[str, Flag(
        "admission state: sqlite:///PATH (sqlite:////abs/path), memory://, or "
        "etcd://HOST:PORT[,HOST:PORT...] shared by several replicas", "URL",
        derived=f"sqlite:///DATA_DIR/{paths.STORE_FILE}",
    )] = Field(default_factory=_store)
    etcd_prefix: Annotated[str, Flag(
        "prefix of every etcd key gatekeeper uses", "PREFIX", mirrors="kube-apiserver --etcd-prefix",
    )] = DEFAULT_PREFIX
    etcd_cafile: Annotated[Path | None, Flag(
        "CA that signed the etcd members' certificates (HTTPS)", "FILE", input_file, mirrors=KUBE,
    )] = None
    etcd_certfile: Annotated[Path | None, Flag(
        "client certificate presented to etcd", "FILE", input_file, mirrors=KUBE,
    )] = None
    etcd_keyfile: Annotated[Path | None, Flag(
        "key of --etcd-certfile", "FILE", input_file, mirrors=KUBE,
    )] = None
    service_account_token_volume: Annotated[Literal["projected", "secret"], Flag(
        "token volume the ServiceAccount plugin mounts: projected (current Kubernetes) or secret (the "
        "service account's token Secret)",
    )] = PROJECTED

    workers: Annotated[int, Field(ge=1), Flag("worker processes", "N")] = 1
    reload_interval: Annotated[float, Field(gt=0), Flag(
        "how often the policy, credential and state files are checked for changes", "SECONDS",
    )] = 1.0
    reload_settle: Annotated[float, Field(ge=0), Flag(
        "seconds a changed file must stay unchanged (size, mtime) before a poll loads it; SIGHUP loads "
        "at once", "SECONDS",
    )] = 1.0
    max_request_bytes: Annotated[int, Field(gt=0), Flag(
        "refuse larger request bodies (413), as kube-apiserver's 3 MiB", "BYTES",
    )] = 3 * 1024 * 1024
    max_json_depth: Annotated[int, Field(gt=0, le=1000), Flag(
        "refuse request bodies nested deeper than this (400)", "N",
    )] = 64
    # Connection hygiene, kube-apiserver's values (server/connections.py; README: Hardening).
    request_header_timeout: Annotated[float, Field(gt=0), Flag(
        "close a connection whose request head (line and headers) is not complete this long after the "
        "TLS handshake or its first byte (kube-apiserver's)", "SECONDS",
    )] = 32.0
    idle_timeout: Annotated[float, Field(gt=0), Flag(
        "close a keep-alive connection idle this long between requests", "SECONDS",
        aliases=("--keep-alive-timeout",),
    )] = 90.0
    max_request_header_bytes: Annotated[int, Field(ge=1024), Flag(
        "answer 431 to a request head larger than this (Go's 1 MiB)", "BYTES",
    )] = 1 << 20
    tls_handshake_timeout: Annotated[float, Field(gt=0), Flag(
        "close a connection whose TLS handshake takes longer", "SECONDS",
    )] = 10.0
    max_open_connections: Annotated[int, Field(ge=1), Flag(
        "open connections per worker; at the cap a new connection closes the one idle or slow in its "
        "head the longest (lowered to fit the open file limit, which serve raises to the hard limit)", "N",
    )] = 1000
    log_level: Annotated[str, Flag("debug, info, warning, error or critical", "LEVEL")] = "info"
    log_format: Annotated[Literal["text", "json"], Flag("log line format")] = "text"
    audit_log_path: Annotated[Path | None, Flag(
        "write one JSON line per decision to this file", "FILE", mirrors=KUBE,
    )] = None
    audit_log_maxsize: Annotated[int, Field(ge=0), Flag(
        "rotate the audit log when it reaches this many megabytes (0: 100, as kube-apiserver reads it)",
        "MB", mirrors=KUBE,
    )] = 100
    audit_log_maxbackup: Annotated[int, Field(ge=0), Flag(
        "rotated audit log files to keep (0: keep them all, as kube-apiserver does)", "N", mirrors=KUBE,
    )] = 10

    @field_validator("webhook_callers", "metrics_readers")
    @classmethod
    def _identities(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_identity(entry) for entry in entries)
