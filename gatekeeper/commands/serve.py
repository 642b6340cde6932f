"""`gatekeeper serve`: the HTTPS webhook server."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from pydantic import ValidationError

from gatekeeper import paths, pki
from gatekeeper.commands.files import input_file, input_path, kubeconfig, tls_file
from gatekeeper.commands.store_flags import add_data_dir_flag, add_store_flags, store_url
from gatekeeper.commands.tls_check import check_port, check_tls_files
from gatekeeper.config import (
    DEFAULT_ADMISSION_PLUGINS,
    DEFAULT_METRICS_READERS,
    DEFAULT_WEBHOOK_CALLERS,
    Settings,
    check_identity,
    parse_identities,
)

log = logging.getLogger("gatekeeper.serve")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the HTTPS webhook server",
        description="Serve authentication, ABAC authorization and admission over HTTPS for a "
                    "kube-apiserver (and anyone --webhook-callers names). With no flags: "
                    "https://127.0.0.1:8443, the packaged example policy, a dev PKI and the state in "
                    "--data-dir; start-up logs where each is.",
    )
    p.add_argument("--bind-address", default="127.0.0.1", metavar="IP",
                   help="address to listen on; 0.0.0.0 (or ::) to serve a cluster")
    p.add_argument("--secure-port", type=int, default=8443, metavar="PORT", help="HTTPS port")
    p.add_argument("--tls-cert-file", type=tls_file, metavar="FILE",
                   help="serving certificate (PEM); with --tls-private-key-file. Default: the dev "
                        "certificate in --cert-dir, made on first run")
    p.add_argument("--tls-private-key-file", type=tls_file, metavar="FILE",
                   help="private key of --tls-cert-file (PEM)")
    p.add_argument("--client-ca-file", type=tls_file, metavar="FILE",
                   help="CA bundle that verifies client certificates (default: the dev CA when no TLS "
                        "flags are given, else none)")
    add_data_dir_flag(p)
    p.add_argument("--cert-dir", type=Path, default=None, metavar="DIR",
                   help="where dev certificates are made when no TLS flags are given "
                        "(default: DATA_DIR/certs)")
    p.add_argument("--token-auth-file", type=input_file, metavar="FILE",
                   help="static bearer tokens, kube-apiserver's CSV format (token,user,uid,\"groups\")")
    p.add_argument("--basic-auth-file", type=input_file, metavar="FILE",
                   help="basic-auth users: password or password hash,user,uid,\"groups\"")
    p.add_argument("--anonymous-auth", action=argparse.BooleanOptionalAction, default=False,
                   help="treat unauthenticated callers as system:anonymous instead of refusing them")
    p.add_argument("--max-password-hashes-inflight", type=hash_limit, default=2, metavar="N",
                   help="password hash checks (basic auth) each worker runs at once, on threads of "
                        "their own; one more is refused at once with 429 and Retry-After (default: 2)")
    p.add_argument("--api-audiences", default="", metavar="AUDIENCE,...",
                   help="comma-separated audiences static tokens are valid for (TokenReview); "
                        "default: defer to the API server's own")
    p.add_argument("--authorization-policy-file", type=input_file, default=None, metavar="FILE",
                   help="ABAC policy, one rule per line, reloaded on change (default: the packaged "
                        "example, gatekeeper/defaults/abac.jsonl)")
    p.add_argument("--authorization-deny-unmatched", action="store_true",
                   help="answer denied:true when no rule matches (gatekeeper is the only authorizer)")
    p.add_argument("--shadow-authorization-policy-file", type=input_file, default=None, metavar="FILE",
                   help="decide every SubjectAccessReview a second time under FILE, never changing the "
                        "answer: agreements and disagreements counted in /metrics, each disagreement "
                        "audited with both reasons; reloaded like the policy (default: none)")
    p.add_argument("--webhook-callers", type=identities, default=DEFAULT_WEBHOOK_CALLERS,
                   metavar="user:NAME|group:NAME,...",
                   help="who may call /authorize, /authenticate, /mutate, /validate and /admit; the "
                        "ABAC policy is not consulted for them (default: user:kube-apiserver, the "
                        "client certificate of `certs init`)")
    p.add_argument("--metrics-readers", type=identities, default=DEFAULT_METRICS_READERS,
                   metavar="user:NAME|group:NAME,...",
                   help="who may GET /metrics and /quota (default: user:kube-apiserver,user:prometheus)")
    p.add_argument("--enable-admission-plugins", "--admission-control", dest="enable_admission_plugins",
                   default=",".join(DEFAULT_ADMISSION_PLUGINS), metavar="PLUGIN,...",
                   help="admission plugins, run in this order")
    p.add_argument("--kubeconfig", type=kubeconfig, default=None, metavar="FILE",
                   help="live state: list and watch the cluster's Namespaces, LimitRanges, "
                        "ResourceQuotas, ServiceAccounts and Secrets from the API server this kubeconfig "
                        "names, and charge quota on the ResourceQuota objects themselves; 'in-cluster' "
                        "for the pod's service account (the default inside a pod). Without it: "
                        "standalone, state from --state manifests and --store")
    p.add_argument("--quota-controller", action="store_true",
                   help="with --kubeconfig, for clusters without kube-controller-manager's resourcequota "
                        "controller: gatekeeper syncs status.hard and recounts status.used from its own "
                        "watches of pods, services, PVCs, configmaps, secrets and replication controllers "
                        "(run one quota controller per cluster)")
    p.add_argument("--quota-sync-period", type=float, default=300.0, metavar="SECONDS",
                   help="--quota-controller's full recount interval, as kube-controller-manager's "
                        "--resource-quota-sync-period (default: 300)")
    p.add_argument("--state", type=input_path, action="append", default=[], metavar="PATH",
                   help="standalone: manifest file or folder (repeatable)")
    add_store_flags(p, None,
                    "admission state: sqlite:///PATH (sqlite:////abs/path), memory://, or "
                    "etcd://HOST:PORT[,HOST:PORT...] shared by several replicas")
    p.add_argument("--service-account-token-volume", choices=("projected", "secret"), default="projected",
                   help="token volume the ServiceAccount plugin mounts: projected (current Kubernetes) "
                        "or secret (the service account's token Secret)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes")
    p.add_argument("--reload-interval", type=float, default=1.0, metavar="SECONDS",
                   help="how often the policy, credential and state files are checked for changes")
    p.add_argument("--reload-settle", type=float, default=1.0, metavar="SECONDS",
                   help="seconds a changed file must stay unchanged (size, mtime) before a poll loads "
                        "it; SIGHUP loads at once")
    p.add_argument("--max-request-bytes", type=int, default=3 * 1024 * 1024, metavar="BYTES",
                   help="refuse larger request bodies (413), as kube-apiserver's 3 MiB")
    p.add_argument("--max-json-depth", type=int, default=64, metavar="N",
                   help="refuse request bodies nested deeper than this (400)")
    add_connection_flags(p)
    p.add_argument("--log-level", default="info", metavar="LEVEL",
                   help="debug, info, warning, error or critical")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    p.add_argument("--audit-log-path", type=Path, metavar="FILE",
                   help="write one JSON line per decision to this file")
    p.add_argument("--audit-log-maxsize", type=int, default=100, metavar="MB",
                   help="rotate the audit log when it reaches this many megabytes "
                        "(0: 100, as kube-apiserver reads it)")
    p.add_argument("--audit-log-maxbackup", type=int, default=10, metavar="N",
                   help="rotated audit log files to keep (0: keep them all, as kube-apiserver does)")
    p.set_defaults(run=run)


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    """Connection limits; the defaults are kube-apiserver's (README: Hardening, Connections)."""
    p.add_argument("--request-header-timeout", type=float, default=32.0, metavar="SECONDS",
                   help="close a connection whose request head (line and headers) is not complete this "
                        "long after the TLS handshake or its first byte (default: 32, kube-apiserver's)")
    p.add_argument("--idle-timeout", "--keep-alive-timeout", dest="idle_timeout", type=float, default=90.0,
                   metavar="SECONDS",
                   help="close a keep-alive connection idle this long between requests (default: 90)")
    p.add_argument("--max-request-header-bytes", type=int, default=1 << 20, metavar="BYTES",
                   help="answer 431 to a request head larger than this (default: 1048576, Go's 1 MiB)")
    p.add_argument("--tls-handshake-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close a connection whose TLS handshake takes longer (default: 10)")
    p.add_argument("--max-open-connections", type=int, default=1000, metavar="N",
                   help="open connections per worker; at the cap a new connection closes the one idle "
                        "or slow in its head the longest (default: 1000; lowered to fit the open file "
                        "limit, which serve raises to the hard limit)")


def hash_limit(text: str) -> int:
    """--max-password-hashes-inflight: a whole number from 1 to 256 (argparse words the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be from 1 to 256, got {value}")
    return value




def settings_from(args: argparse.Namespace) -> Settings:
    plugins = tuple(p.strip() for p in args.enable_admission_plugins.split(",") if p.strip())
    return Settings(
        bind_address=args.bind_address,
        secure_port=args.secure_port,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        data_dir=args.data_dir,
        cert_dir=args.cert_dir or paths.cert_dir(args.data_dir),
        token_auth_file=args.token_auth_file,
        basic_auth_file=args.basic_auth_file,
        anonymous_auth=args.anonymous_auth,
        max_password_hashes_inflight=args.max_password_hashes_inflight,
        api_audiences=tuple(a.strip() for a in args.api_audiences.split(",") if a.strip()),
        authorization_policy_file=args.authorization_policy_file or paths.default_policy(),
        authorization_deny_unmatched=args.authorization_deny_unmatched,
        shadow_authorization_policy_file=args.shadow_authorization_policy_file,
        webhook_callers=args.webhook_callers,
        metrics_readers=args.metrics_readers,
        enable_admission_plugins=plugins,
        state=tuple(args.state),
        kubeconfig=live_source(args),
        quota_controller=args.quota_controller,
        quota_sync_period=args.quota_sync_period,
        store=store_url(args),
        etcd_prefix=args.etcd_prefix,
        etcd_cafile=args.etcd_cafile,
        etcd_certfile=args.etcd_certfile,
        etcd_keyfile=args.etcd_keyfile,
        service_account_token_volume=args.service_account_token_volume,
        workers=args.workers,
        reload_interval=args.reload_interval,
        reload_settle=args.reload_settle,
        max_request_bytes=args.max_request_bytes,
        max_json_depth=args.max_json_depth,
        request_header_timeout=args.request_header_timeout,
        idle_timeout=args.idle_timeout,
        max_request_header_bytes=args.max_request_header_bytes,
        tls_handshake_timeout=args.tls_handshake_timeout,
        max_open_connections=args.max_open_connections,
        log_level=args.log_level,
        log_format=args.log_format,
        audit_log_path=args.audit_log_path,
        audit_log_maxsize=args.audit_log_maxsize,
        audit_log_maxbackup=args.audit_log_maxbackup,
    )


def identities(text: str) -> tuple[str, ...]:
    """--webhook-callers / --metrics-readers: comma-separated user:NAME and group:NAME entries."""
    try:
        return tuple(check_identity(entry) for entry in parse_identities(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def live_source(args: argparse.Namespace) -> str | None:
    """--kubeconfig, or in a pod (and with no standalone state asked for) the in-cluster config."""
    if args.kubeconfig:
        if args.state or args.store is not None:
            raise SystemExit(
                "error: --state and --store go with standalone mode; with --kubeconfig the API "
                "server's objects are the state and its ResourceQuotas the quota ledger (drop them, "
                "or drop --kubeconfig to serve from manifests)"
            )
        return str(args.kubeconfig)
    if args.state:
        return None
    from gatekeeper.backends.kube.client import default_source

    return default_source()


def with_dev_certificates(settings: Settings) -> Settings:
    """No TLS flags: use (and on first run create) the dev PKI under --cert-dir."""
    if settings.tls_cert_file and settings.tls_private_key_file:
        return settings
    if settings.tls_cert_file or settings.tls_private_key_file:
        raise ValueError("--tls-cert-file and --tls-private-key-file go together: give both, or neither "
                         "for the dev certificate in --cert-dir")
    try:
        ca, server = pki.ensure_dev_pki(settings.cert_dir)
    except OSError as exc:
        raise ValueError(f"--cert-dir {settings.cert_dir}: {exc.strerror or exc}; name a folder this user "
                         f"can write (or --data-dir)") from None
    log.info("no TLS flags: serving the dev certificate %s (CA %s)", server.cert, ca.cert)
    if settings.client_ca_file is None:  # the dev CA verifies clients: give kube-apiserver a certificate
        client = pki.ensure_dev_client(settings.cert_dir, pki.DEV_CLIENT)
        log.info("dev client certificate for user %r: %s (key %s)", pki.DEV_CLIENT, client.cert, client.key)
    return settings.model_copy(update={
        "tls_cert_file": server.cert,
        "tls_private_key_file": server.key,
        "client_ca_file": settings.client_ca_file or ca.cert,
    })


def run(args: argparse.Namespace) -> int:
    from gatekeeper.server import logs

    try:
        settings = settings_from(args)
    except ValidationError as exc:
        raise SystemExit(f"error: {flag_errors(exc)}") from None
    logs.configure(settings.log_format, settings.log_level)
    try:
        check_port(settings.bind_address, settings.secure_port)
        settings = with_dev_certificates(settings)
        check_tls_files(settings)
    except ValueError as exc:
        print(f"gatekeeper serve: {exc}", file=sys.stderr)
        return 1
    log_locations(settings)
    with _metrics_dir(settings.workers):
        return _serve(settings)


def log_locations(settings: Settings) -> None:
    """Say where everything is: a newcomer should not have to guess which files a server uses."""
    log.info("data directory %s (--data-dir)", settings.data_dir)
    log.info("policy %s (--authorization-policy-file)", settings.authorization_policy_file)
    if settings.kubeconfig is None:
        log.info("state %s (--store; reset with `gatekeeper state reset --yes`)", settings.store)
    if settings.token_auth_file is None and settings.basic_auth_file is None:
        log.info("no token or basic-auth file: example dev-only credentials are in %s (--token-auth-file, "
                 "--basic-auth-file)", paths.packaged(""))


def flag_errors(exc: ValidationError) -> str:
    """Settings' refusals under the flags' names: "--idle-timeout: Input should be greater than 0"."""
    return "; ".join(
        f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}" if error["loc"] else error["msg"]
        for error in exc.errors()
    )


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Several workers share request metrics through prometheus-client's multiprocess directory."""
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="gatekeeper-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _serve(settings: Settings) -> int:
    from gatekeeper.server import logs
    from gatekeeper.server.app import create_app

    try:
        app = create_app(settings)  # load everything once here, so a bad file fails start-up
    except (OSError, ValueError) as exc:
        print(f"gatekeeper serve: {exc}", file=sys.stderr)
        return 1
    os.environ["GATEKEEPER_SETTINGS"] = orjson.dumps(settings.model_dump(mode="json")).decode()
    assert settings.tls_cert_file and settings.tls_private_key_file
    from gatekeeper.server.connections import raise_open_file_limit
    from gatekeeper.server.tls import uvicorn_server_options

    open_files = raise_open_file_limit()  # before the workers start: they inherit it

    target: Any = app if settings.workers == 1 else "gatekeeper.server.app:create_app_from_env"
    uvicorn.run(
        target,
        factory=settings.workers > 1,
        host=settings.bind_address,
        port=settings.secure_port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,  # callers connect directly; no X-Forwarded-For may rename the client
        log_config=logs.log_config(settings.log_format, settings.log_level),
        **uvicorn_server_options(settings, open_files),
    )
    return 0
