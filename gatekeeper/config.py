"""One settings model for `gatekeeper serve`; flag names follow kube-apiserver's."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatekeeper import paths

DEFAULT_ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "ResourceQuota",
)


# Who may call gatekeeper's own endpoints: `user:NAME` or `group:NAME` entries. The default is the
# client certificate `gatekeeper certs init` and `webhook-config` make for kube-apiserver (CN
# kube-apiserver, no O), plus for the readers the Prometheus user the README's examples scrape as.
IDENTITY_KINDS = ("user:", "group:")
DEFAULT_WEBHOOK_CALLERS = ("user:kube-apiserver",)
DEFAULT_METRICS_READERS = ("user:kube-apiserver", "user:prometheus")


def parse_identities(text: str) -> tuple[str, ...]:
    """A comma-separated flag value as identity entries (blank entries dropped, checked by Settings)."""
    return tuple(entry.strip() for entry in text.split(",") if entry.strip())


def check_identity(entry: str) -> str:
    kind = next((k for k in IDENTITY_KINDS if entry.startswith(k)), None)
    if kind is None or not entry[len(kind):]:
        raise ValueError(f"{entry!r}: expected user:NAME or group:NAME")
    return entry


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bind_address: str = "127.0.0.1"
    secure_port: int = Field(default=8443, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    client_ca_file: Path | None = None
    data_dir: Path = Field(default_factory=paths.default_data_dir)  # certs/ and gatekeeper.db
    cert_dir: Path = Field(default_factory=lambda: paths.cert_dir(paths.default_data_dir()))

    token_auth_file: Path | None = None
    basic_auth_file: Path | None = None
    anonymous_auth: bool = False
    api_audiences: tuple[str, ...] = ()
    max_password_hashes_inflight: int = Field(default=2, ge=1, le=256)  # per worker; beyond: 429

    authorization_policy_file: Path = Field(default_factory=paths.default_policy)
    authorization_deny_unmatched: bool = False
    shadow_authorization_policy_file: Path | None = None  # decided too, never answered (server/shadow.py)
    webhook_callers: tuple[str, ...] = DEFAULT_WEBHOOK_CALLERS  # /authorize, /authenticate, admission
    metrics_readers: tuple[str, ...] = DEFAULT_METRICS_READERS  # /metrics, /quota

    enable_admission_plugins: tuple[str, ...] = DEFAULT_ADMISSION_PLUGINS
    state: tuple[Path, ...] = ()
    kubeconfig: str | None = None  # live state from this API server ("in-cluster" in a pod)
    quota_controller: bool = False  # with kubeconfig: recount quota usage from the watches
    quota_sync_period: float = Field(default=300.0, gt=0)  # the recount's full resync, seconds
    store: str = Field(default_factory=lambda: paths.store_url(paths.default_data_dir()))
    etcd_prefix: str = "/gatekeeper/"  # the etcd store's keys (--store etcd://...), as kube-apiserver's
    etcd_cafile: Path | None = None
    etcd_certfile: Path | None = None
    etcd_keyfile: Path | None = None
    service_account_token_volume: Literal["projected", "secret"] = "projected"

    workers: int = Field(default=1, ge=1)
    reload_interval: float = Field(default=1.0, gt=0)
    reload_settle: float = Field(default=1.0, ge=0)  # a changed file loads once unchanged this long
    max_request_bytes: int = Field(default=3 * 1024 * 1024, gt=0)
    max_json_depth: int = Field(default=64, gt=0, le=1000)
    # Connection hygiene, kube-apiserver's values (server/connections.py).
    request_header_timeout: float = Field(default=32.0, gt=0)
    idle_timeout: float = Field(default=90.0, gt=0)
    max_request_header_bytes: int = Field(default=1 << 20, ge=1024)
    tls_handshake_timeout: float = Field(default=10.0, gt=0)
    max_open_connections: int = Field(default=1000, ge=1)  # per worker
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    audit_log_path: Path | None = None
    audit_log_maxsize: int = Field(default=100, ge=0)  # MB; 0 = 100, as kube-apiserver reads it
    audit_log_maxbackup: int = Field(default=10, ge=0)  # 0 = keep every rotated file

    @field_validator("webhook_callers", "metrics_readers")
    @classmethod
    def _identities(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_identity(entry) for entry in entries)
