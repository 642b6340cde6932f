"""`gatekeeper webhook-config --url https://HOST:PORT`: what a kube-apiserver needs to call gatekeeper.

Writes into --out-dir (default webhook-config/):

    authorization-config.yaml          --authorization-config (AuthorizationConfiguration: Node,
                                       gatekeeper as a webhook, RBAC)
    authorization-webhook.kubeconfig   its webhook's kubeconfig (URL/authorize); also the legacy
                                       --authorization-webhook-config-file
    authentication-webhook.kubeconfig  --authentication-token-webhook-config-file    (URL/authenticate)
    admission-configuration.yaml       --admission-control-config-file (AdmissionConfiguration)
    admission-kubeconfig.yaml          the client certificate kube-apiserver shows the admission webhooks
    admission-webhooks.yaml            Mutating/ValidatingWebhookConfiguration, for `kubectl apply -f`
    kube-apiserver-flags.txt           the flags that use them (--authorization-config)
    kube-apiserver-flags-legacy.txt    the same with --authorization-mode and the webhook flags, for
                                       API servers before 1.32 or setups that keep --authorization-mode

The kubeconfig files embed kube-apiserver's client certificate and private key: they are written
with mode 0600 and listed in the folder's .gitignore. The caBundle/certificate-authority-data is
the CA that signed gatekeeper's serving certificate.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gatekeeper import paths, pki
from gatekeeper.commands.tls_check import check_pair, load_certificates
from gatekeeper.config import Settings
from gatekeeper.config.files import CERTS_HINT, tls_file
from gatekeeper.config.flags import add_flag

AUTHORIZATION_CONFIG = "authorization-config.yaml"
AUTHORIZATION_KUBECONFIG = "authorization-webhook.kubeconfig"
AUTHENTICATION_KUBECONFIG = "authentication-webhook.kubeconfig"
ADMISSION_CONFIGURATION = "admission-configuration.yaml"
ADMISSION_KUBECONFIG = "admission-kubeconfig.yaml"
ADMISSION_WEBHOOKS = "admission-webhooks.yaml"
FLAGS = "kube-apiserver-flags.txt"
LEGACY_FLAGS = "kube-apiserver-flags-legacy.txt"
# The in-tree plugins gatekeeper's webhooks stand in for: left on, they would enforce twice (and
# charge quota twice).
REPLACED_PLUGINS = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "ResourceQuota")
# Requests gatekeeper can never decide: the Node authorizer answers kubelets' own.
DEFAULT_SKIPPED_GROUPS = ("system:nodes",)
SECRET_FILES = (AUTHORIZATION_KUBECONFIG, AUTHENTICATION_KUBECONFIG, ADMISSION_KUBECONFIG)

# What the admission plugins act on: pods (LimitRanger, ServiceAccount, ResourceQuota), the objects
# ResourceQuota counts, and namespaces (NamespaceLifecycle refuses deleting the immortal ones).
MUTATING_RULES: list[dict[str, Any]] = [
    {
        "operations": ["CREATE", "UPDATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods"],
        "scope": "Namespaced",
    },
]
VALIDATING_RULES: list[dict[str, Any]] = [
    {
        "operations": ["CREATE", "UPDATE", "DELETE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": [
            "pods",
            "pods/resize",
            "services",
            "persistentvolumeclaims",
            "configmaps",
            "secrets",
            "replicationcontrollers",
            "resourcequotas",
            "serviceaccounts",
            "limitranges",
        ],
        "scope": "Namespaced",
    },
]
# Deleting an immortal namespace (default, kube-system, kube-public) is refused by NamespaceLifecycle.
# A namespace object matches a namespaceSelector by its own labels, so this webhook has none: the
# exemption of kube-system must not exempt deleting kube-system itself.
NAMESPACE_RULES: list[dict[str, Any]] = [
    {
        "operations": ["DELETE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["namespaces"],
        "scope": "Cluster",
    },
]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "webhook-config",
        help="write kube-apiserver's webhook kubeconfigs and the admission webhook manifests",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    p.add_argument("--url", required=True, metavar="URL",
                   help="gatekeeper's base URL as the API server reaches it; its host must be named by "
                        "the serving certificate")
    p.add_argument("--out-dir", type=Path, default=Path("webhook-config"), metavar="DIR",
                   help="where to write the files")
    add_flag(p, Settings, "cert_dir", default=paths.default_cert_dir(), derived="",
             help="the dev PKI of `gatekeeper certs init` and `serve`, DATA_DIR/certs unless told")
    p.add_argument(
        "--ca-file", type=tls_file, metavar="FILE",
        help="the CA of gatekeeper's serving certificate (default: CERT_DIR/ca.crt)",
    )
    p.add_argument(
        "--serving-cert", type=tls_file, metavar="FILE",
        help="gatekeeper's serving certificate (serve's --tls-cert-file), whose names --url's host must "
             "be among (default: CERT_DIR/server.crt)",
    )
    p.add_argument(
        "--client-cert",
        type=tls_file,
        metavar="FILE",
        help="kube-apiserver's client certificate (default: CERT_DIR/kube-apiserver.crt)",
    )
    p.add_argument("--client-key", type=tls_file, metavar="FILE",
                   help="its private key (default: CERT_DIR/kube-apiserver.key)")
    p.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="where these files will be on the API server's host (default: --out-dir, absolute)",
    )
    p.add_argument(
        "--timeout-seconds",
        type=int,
        default=3,
        metavar="SECONDS",
        help="admission webhook timeout, 1..30 (3: a slow webhook must not stall the API server)",
    )
    p.add_argument("--failure-policy", choices=("Fail", "Ignore"), default="Fail",
                   help="admission webhooks' failurePolicy")
    p.add_argument("--authorization-failure-policy", choices=("NoOpinion", "Deny"), default="NoOpinion",
                   help="the authorization webhook's failurePolicy: NoOpinion lets the next authorizer "
                        "(RBAC) decide while gatekeeper is unreachable")
    p.add_argument("--authorization-timeout-seconds", type=int, default=3, metavar="SECONDS",
                   help="authorization webhook timeout, 1..30")
    p.add_argument("--authorized-ttl", default="5m0s", metavar="DURATION",
                   help="how long kube-apiserver caches an allow (a Go duration)")
    p.add_argument("--unauthorized-ttl", default="30s", metavar="DURATION",
                   help="how long kube-apiserver caches a deny or no-opinion (a Go duration)")
    p.add_argument("--token-cache-ttl", default="2m0s", metavar="DURATION",
                   help="how long kube-apiserver caches a TokenReview answer (a Go duration)")
    p.add_argument("--authorization-skip-group", action="append", default=None, metavar="GROUP",
                   help="callers in this group are never sent to gatekeeper's authorizer "
                        "(repeatable; default system:nodes, which the Node authorizer answers)")
    p.add_argument(
        "--exempt-namespace",
        action="append",
        default=None,
        metavar="NAMESPACE",
        help="namespaces the admission webhooks never see (repeatable; default kube-system)",
    )
    p.add_argument("--service", metavar="NAMESPACE/NAME",
                   help="gatekeeper runs in the cluster behind this Service (deploy/): the admission "
                        "webhooks name it instead of --url, whose host must then be NAME.NAMESPACE.svc")
    p.add_argument("--name", default="gatekeeper", metavar="NAME",
                   help="name of the webhook configuration objects")
    p.set_defaults(run=run)


@dataclass(frozen=True, slots=True)
class Inputs:
    url: str
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes
    config_dir: Path
    timeout_seconds: int
    failure_policy: str
    exempt_namespaces: tuple[str, ...]
    name: str
    service: tuple[str, str] | None  # (namespace, name): the admission webhooks call this Service
    authorization: AuthorizationOptions


@dataclass(frozen=True, slots=True)
class AuthorizationOptions:
    """The authorization webhook as kube-apiserver runs it: failure policy, timeout, caches."""

    failure_policy: str
    timeout_seconds: int
    authorized_ttl: str
    unauthorized_ttl: str
    token_cache_ttl: str
    skipped_groups: tuple[str, ...]


_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:h|m|s|ms))+$")


def check_duration(flag: str, value: str) -> str:
    """A Go duration as kube-apiserver's config decoder reads one (5m0s, 30s, 1h, 1.5s)."""
    if value != "0" and not _DURATION.match(value):
        raise ValueError(f"{flag} {value!r}: expected a Go duration such as 30s, 5m0s or 1h")
    return value


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"--url {url!r}: expected https://HOST[:PORT]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"--url {url!r}: no query, fragment or user info")
    return url.rstrip("/")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def webhook_kubeconfig(inputs: Inputs, path: str) -> dict[str, Any]:
    """A kubeconfig for --authorization-webhook-config-file / --authentication-token-webhook-config-file."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": inputs.name,
                "cluster": {
                    "server": inputs.url + path,
                    "certificate-authority-data": b64(inputs.ca_pem),
                },
            }
        ],
        "users": [{"name": pki.DEV_CLIENT, "user": _client_identity(inputs)}],
        "contexts": [{"name": "webhook", "context": {"cluster": inputs.name, "user": pki.DEV_CLIENT}}],
        "current-context": "webhook",
        "preferences": {},
    }


def _client_identity(inputs: Inputs) -> dict[str, str]:
    return {
        "client-certificate-data": b64(inputs.client_cert_pem),
        "client-key-data": b64(inputs.client_key_pem),
    }


def admission_kubeconfig(inputs: Inputs) -> dict[str, Any]:
    """The kubeconfig of WebhookAdmissionConfiguration: users named by the webhook URL's host[:port]."""
    parts = urlsplit(inputs.url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    names = [f"{host}:{parts.port}"] if parts.port else [host]
    if parts.port == 443:
        names.append(host)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "users": [{"name": name, "user": _client_identity(inputs)} for name in names],
    }


def admission_configuration(inputs: Inputs) -> dict[str, Any]:
    kubeconfig = str(inputs.config_dir / ADMISSION_KUBECONFIG)
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": plugin,
                "configuration": {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "WebhookAdmissionConfiguration",
                    "kubeConfigFile": kubeconfig,
                },
            }
            for plugin in ("ValidatingAdmissionWebhook", "MutatingAdmissionWebhook")
        ],
    }


def _webhook(
    inputs: Inputs, verb: str, rules: list[dict[str, Any]], name: str = "", exempt: bool = True
) -> dict[str, Any]:
    webhook: dict[str, Any] = {
        "name": f"{name or verb}.{inputs.name}.local",
        "clientConfig": _client_config(inputs, f"/{verb}"),
        "rules": rules,
    }
    if exempt:
        webhook["namespaceSelector"] = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": list(inputs.exempt_namespaces),
                }
            ]
        }
    return webhook | {
        "matchPolicy": "Equivalent",
        "failurePolicy": inputs.failure_policy,
        "sideEffects": "NoneOnDryRun",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": inputs.timeout_seconds,
    }


def _client_config(inputs: Inputs, path: str) -> dict[str, Any]:
    if inputs.service is None:
        return {"url": inputs.url + path, "caBundle": b64(inputs.ca_pem)}
    namespace, name = inputs.service
    port = urlsplit(inputs.url).port or 443
    return {"service": {"namespace": namespace, "name": name, "path": path, "port": port},
            "caBundle": b64(inputs.ca_pem)}


def _service(given: str | None, url: str) -> tuple[str, str] | None:
    """--service NAMESPACE/NAME; kube-apiserver then verifies the certificate for NAME.NAMESPACE.svc,
    and finds the admission kubeconfig's user by that host, so --url must name it."""
    if given is None:
        return None
    namespace, _, name = given.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"--service {given!r}: expected NAMESPACE/NAME")
    host = f"{name}.{namespace}.svc"
    if urlsplit(url).hostname != host:
        raise ValueError(f"--service {given}: --url must be https://{host}[:PORT], the name kube-apiserver "
                         f"calls the Service by (got {url})")
    return namespace, name


def webhook_configurations(inputs: Inputs) -> list[dict[str, Any]]:
    mutating = _webhook(inputs, "mutate", MUTATING_RULES)
    mutating["reinvocationPolicy"] = "Never"
    labels = {"app.kubernetes.io/name": "gatekeeper"}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": inputs.name, "labels": labels},
            "webhooks": [mutating],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": inputs.name, "labels": labels},
            "webhooks": [
                _webhook(inputs, "validate", VALIDATING_RULES),
                _webhook(inputs, "validate", NAMESPACE_RULES, name="namespaces", exempt=False),
            ],
        },
    ]


def authorization_configuration(inputs: Inputs) -> dict[str, Any]:
    """AuthorizationConfiguration (apiserver.config.k8s.io/v1, GA in 1.32): Node, gatekeeper, RBAC."""
    options = inputs.authorization
    webhook: dict[str, Any] = {
        "timeout": f"{options.timeout_seconds}s",
        "authorizedTTL": options.authorized_ttl,
        "unauthorizedTTL": options.unauthorized_ttl,
        "subjectAccessReviewVersion": "v1",
        "matchConditionSubjectAccessReviewVersion": "v1",
        "failurePolicy": options.failure_policy,
        "connectionInfo": {
            "type": "KubeConfigFile",
            "kubeConfigFile": str(inputs.config_dir / AUTHORIZATION_KUBECONFIG),
        },
    }
    if options.skipped_groups:
        webhook["matchConditions"] = [
            {"expression": f"!({_cel_string(group)} in request.groups)"} for group in options.skipped_groups
        ]
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthorizationConfiguration",
        "authorizers": [
            {"type": "Node", "name": "node"},
            {"type": "Webhook", "name": inputs.name, "webhook": webhook},
            {"type": "RBAC", "name": "rbac"},
        ],
    }


def _cel_string(value: str) -> str:
    """A CEL string literal: JSON's escaping is valid CEL for every character."""
    return json.dumps(value)


def kube_apiserver_flags(inputs: Inputs) -> list[str]:
    """The flags with --authorization-config (Kubernetes 1.32 and later)."""
    return [f"--authorization-config={inputs.config_dir / AUTHORIZATION_CONFIG}", *_common_flags(inputs)]


def legacy_kube_apiserver_flags(inputs: Inputs) -> list[str]:
    """The flags with --authorization-mode; its webhook has no timeout, failure policy or conditions."""
    d, options = inputs.config_dir, inputs.authorization
    return [
        "--authorization-mode=Node,Webhook,RBAC",
        f"--authorization-webhook-config-file={d / AUTHORIZATION_KUBECONFIG}",
        "--authorization-webhook-version=v1",
        f"--authorization-webhook-cache-authorized-ttl={options.authorized_ttl}",
        f"--authorization-webhook-cache-unauthorized-ttl={options.unauthorized_ttl}",
        *_common_flags(inputs),
    ]


def _common_flags(inputs: Inputs) -> list[str]:
    d = inputs.config_dir
    return [
        f"--authentication-token-webhook-config-file={d / AUTHENTICATION_KUBECONFIG}",
        "--authentication-token-webhook-version=v1",
        f"--authentication-token-webhook-cache-ttl={inputs.authorization.token_cache_ttl}",
        f"--admission-control-config-file={d / ADMISSION_CONFIGURATION}",
        "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
        f"--disable-admission-plugins={','.join(REPLACED_PLUGINS)}",
    ]


def write_all(inputs: Inputs, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    authorization = webhook_kubeconfig(inputs, "/authorize")
    authentication = webhook_kubeconfig(inputs, "/authenticate")
    written = [
        _write_yaml(out_dir / AUTHORIZATION_CONFIG, [authorization_configuration(inputs)]),
        _write_yaml(out_dir / AUTHORIZATION_KUBECONFIG, [authorization], secret=True),
        _write_yaml(out_dir / AUTHENTICATION_KUBECONFIG, [authentication], secret=True),
        _write_yaml(out_dir / ADMISSION_KUBECONFIG, [admission_kubeconfig(inputs)], secret=True),
        _write_yaml(out_dir / ADMISSION_CONFIGURATION, [admission_configuration(inputs)]),
        _write_yaml(out_dir / ADMISSION_WEBHOOKS, webhook_configurations(inputs)),
    ]
    flags, legacy = out_dir / FLAGS, out_dir / LEGACY_FLAGS
    flags.write_text("\n".join(kube_apiserver_flags(inputs)) + "\n")
    legacy.write_text("\n".join(legacy_kube_apiserver_flags(inputs)) + "\n")
    ignore = out_dir / ".gitignore"
    ignore.write_text(
        "# kube-apiserver's private key is embedded in these: never commit them.\n"
        + "".join(f"{name}\n" for name in SECRET_FILES)
    )
    return [*written, flags, legacy]


def _write_yaml(path: Path, docs: Sequence[dict[str, Any]], secret: bool = False) -> Path:
    text = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)
    if secret:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, 0o600)
    else:
        path.write_text(text)
    return path


def inputs_from(args: argparse.Namespace) -> Inputs:
    url = check_url(args.url)
    if not 1 <= args.timeout_seconds <= 30:
        raise ValueError("--timeout-seconds must be between 1 and 30 (kube-apiserver's limits)")
    if not 1 <= args.authorization_timeout_seconds <= 30:
        raise ValueError("--authorization-timeout-seconds must be between 1 and 30 (kube-apiserver's limits)")
    cert_dir: Path = args.cert_dir
    ca_file = args.ca_file or _in_cert_dir(cert_dir, pki.CA_NAME + ".crt", "--ca-file")
    load_certificates(ca_file, "--ca-file" if args.ca_file else "--cert-dir")
    check_serving_host(url, args.serving_cert or cert_dir / f"{pki.SERVER_NAME}.crt", args)
    if (args.client_cert is None) != (args.client_key is None):
        raise ValueError("--client-cert and --client-key go together")
    if args.client_cert is None:
        client = pki.pair(cert_dir, pki.client_stem(pki.DEV_CLIENT))
        if not (client.cert.exists() and client.key.exists()):
            _in_cert_dir(cert_dir, pki.CA_NAME + ".key", "--client-cert and --client-key")
            client = pki.ensure_dev_client(cert_dir, pki.DEV_CLIENT)
        check_pair(client.cert, client.key, "--cert-dir", "--cert-dir")
        cert_file, key_file = client.cert, client.key
    else:
        check_pair(args.client_cert, args.client_key, "--client-cert", "--client-key")
        cert_file, key_file = args.client_cert, args.client_key
    config_dir = args.config_dir or args.out_dir.resolve()
    return Inputs(
        url=url,
        ca_pem=ca_file.read_bytes(),
        client_cert_pem=cert_file.read_bytes(),
        client_key_pem=key_file.read_bytes(),
        config_dir=config_dir,
        timeout_seconds=args.timeout_seconds,
        failure_policy=args.failure_policy,
        exempt_namespaces=tuple(args.exempt_namespace or ("kube-system",)),
        service=_service(args.service, url),
        name=args.name,
        authorization=AuthorizationOptions(
            failure_policy=args.authorization_failure_policy,
            timeout_seconds=args.authorization_timeout_seconds,
            authorized_ttl=check_duration("--authorized-ttl", args.authorized_ttl),
            unauthorized_ttl=check_duration("--unauthorized-ttl", args.unauthorized_ttl),
            token_cache_ttl=check_duration("--token-cache-ttl", args.token_cache_ttl),
            skipped_groups=_skipped_groups(args.authorization_skip_group),
        ),
    )


def _in_cert_dir(cert_dir: Path, name: str, instead: str) -> Path:
    path = cert_dir / name
    if not path.is_file():
        raise ValueError(f"--cert-dir {cert_dir}: no {name}; run `gatekeeper certs init --dir {cert_dir} "
                         f"--host HOST` (or `gatekeeper serve` once), or pass {instead} ({CERTS_HINT})")
    return path


def check_serving_host(url: str, serving_cert: Path, args: argparse.Namespace) -> None:
    """kube-apiserver checks gatekeeper's certificate against --url's host: a host it does not name
    fails every webhook call with an x509 error, so refuse here, before any file is written."""
    host = urlsplit(url).hostname or ""
    if not serving_cert.is_file():
        if args.serving_cert is None and args.ca_file is not None:  # their own PKI, no certificate given
            print(f"gatekeeper webhook-config: not checking --url's host {host} against a serving "
                  f"certificate: pass --serving-cert to check it", file=sys.stderr)
            return
        raise ValueError(f"--cert-dir {serving_cert.parent}: no {serving_cert.name} to check --url's host "
                         f"against; run `gatekeeper certs init --dir {serving_cert.parent} --host {host}` "
                         f"or pass --serving-cert")
    load_certificates(serving_cert, "--serving-cert")
    names = pki.certificate_hosts(serving_cert)
    if not pki.covers(names, host):
        fix = (f"`gatekeeper certs init --dir {serving_cert.parent} --host {host}` adds it (a running "
               f"serve picks it up)" if args.serving_cert is None else "issue a certificate that names it")
        raise ValueError(f"--url {url}: the serving certificate {serving_cert} does not name {host} "
                         f"(it names {', '.join(names) or 'nothing'}); {fix}")


def _skipped_groups(given: list[str] | None) -> tuple[str, ...]:
    """The default unless the flag is given; `--authorization-skip-group ''` skips nobody."""
    return DEFAULT_SKIPPED_GROUPS if given is None else tuple(group for group in given if group)


def run(args: argparse.Namespace) -> int:
    try:
        inputs = inputs_from(args)
        written = write_all(inputs, args.out_dir)
    except (OSError, ValueError) as exc:
        print(f"gatekeeper webhook-config: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print("\nkube-apiserver flags (Kubernetes 1.32 and later):")
    for flag in kube_apiserver_flags(inputs):
        print(f"  {flag}")
    print(f"\nor, keeping --authorization-mode, the flags in {args.out_dir / LEGACY_FLAGS}")
    print(f"\nregister the admission webhooks: kubectl apply -f {args.out_dir / ADMISSION_WEBHOOKS}")
    return 0
