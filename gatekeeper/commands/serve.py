"""`gatekeeper serve`: the HTTPS webhook server."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import uvicorn
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from gatekeeper import paths, pki
from gatekeeper.commands.tls_check import check_port, check_tls_files
from gatekeeper.config import Settings
from gatekeeper.config.flags import add_flags, values

log = logging.getLogger("gatekeeper.serve")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the HTTPS webhook server",
        description="Serve authentication, ABAC authorization and admission over HTTPS for a "
                    "kube-apiserver (and anyone --webhook-callers names). With no flags: "
                    "https://127.0.0.1:8443, the packaged example policy, a dev PKI and the state in "
                    "--data-dir; start-up logs where each is.",
    )
    add_flags(p, Settings, Settings.model_fields)  # every setting is one of serve's flags
    p.set_defaults(run=run)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(**{**values(Settings, args), "kubeconfig": live_source(args)})


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
        if error["type"] != "default_factory_not_called"  # a default from a refused flag: not news
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
    assert settings.tls_cert_file and settings.tls_private_key_file
    from gatekeeper.server.connections import raise_open_file_limit
    from gatekeeper.server.tls import uvicorn_server_options

    open_files = raise_open_file_limit()  # before the workers start: they inherit it
    options: dict[str, Any] = {
        "host": settings.bind_address,
        "port": settings.secure_port,
        "log_level": settings.log_level,
        "access_log": False,
        "proxy_headers": False,  # callers connect directly; no X-Forwarded-For may rename the client
        "log_config": logs.log_config(settings.log_format, settings.log_level),
        **uvicorn_server_options(settings, open_files),
    }
    if settings.workers == 1:
        uvicorn.run(app, **options)
        return 0
    # Each worker builds its own app from these settings, pickled with uvicorn's Config into the pipe
    # that starts it: not through the environment, which every process a worker starts inherits.
    factory = functools.partial(create_app, settings)
    config = uvicorn.Config(factory, factory=True, workers=settings.workers, **options)
    Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0
