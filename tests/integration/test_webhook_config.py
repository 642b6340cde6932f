"""`gatekeeper webhook-config`: the files parse as kube-apiserver reads them, and they work.

The kubeconfigs are then used the way kube-apiserver uses them (server URL, CA data, client
certificate data) to call a real gatekeeper over TLS.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from cryptography import x509

from tests.support.server import Server, running_server

FILES = {
    "authorization": "authorization-webhook.kubeconfig",
    "authentication": "authentication-webhook.kubeconfig",
    "admission-configuration": "admission-configuration.yaml",
    "admission-kubeconfig": "admission-kubeconfig.yaml",
    "webhooks": "admission-webhooks.yaml",
}


@dataclass
class Generated:
    server: Server
    out: Path
    stdout: str

    def load(self, key: str) -> list[Any]:
        return list(yaml.safe_load_all((self.out / FILES[key]).read_text()))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    workdir = tmp_path_factory.mktemp("webhook-config")
    (workdir / "policies").mkdir()
    repo_policy = Path(__file__).resolve().parents[2] / "policies" / "abac.jsonl"
    (workdir / "policies" / "abac.jsonl").write_bytes(repo_policy.read_bytes())
    (workdir / "tokens.csv").write_text("tok-dev-webhook,alice,uid-a,dev\n")
    with running_server(workdir, ["--token-auth-file", "tokens.csv"]) as server:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gatekeeper.cli",
                "webhook-config",
                "--url",
                server.url,
                "--cert-dir",
                str(server.cert_dir),
                "--out-dir",
                "out",
                "--timeout-seconds",
                "5",
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        yield Generated(server, workdir / "out", result.stdout)


def b64pem(value: str) -> bytes:
    data = base64.b64decode(value, validate=True)
    assert data.startswith(b"-----BEGIN ")
    return data


def check_kubeconfig(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What client-go's clientcmd requires of a webhook kubeconfig; returns (cluster, user)."""
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    clusters = {c["name"]: c["cluster"] for c in doc["clusters"]}
    users = {u["name"]: u["user"] for u in doc["users"]}
    contexts = {c["name"]: c["context"] for c in doc["contexts"]}
    context = contexts[doc["current-context"]]
    cluster, user = clusters[context["cluster"]], users[context["user"]]
    assert urlsplit(cluster["server"]).scheme == "https"
    x509.load_pem_x509_certificate(b64pem(cluster["certificate-authority-data"]))
    x509.load_pem_x509_certificate(b64pem(user["client-certificate-data"]))
    assert b"PRIVATE KEY" in b64pem(user["client-key-data"])
    return cluster, user


def client_for(tmp_path: Path, ca_data: str, user: dict[str, Any]) -> httpx.Client:
    """An HTTPS client configured from kubeconfig data only, as kube-apiserver's would be."""
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(b64pem(user["client-certificate-data"]))
    key.write_bytes(b64pem(user["client-key-data"]))
    context = ssl.create_default_context(cadata=b64pem(ca_data).decode())
    context.load_cert_chain(str(cert), str(key))
    return httpx.Client(verify=context, timeout=10)


def test_authorization_kubeconfig_works_as_kube_apiserver_uses_it(
    generated: Generated, tmp_path: Path
) -> None:
    (doc,) = generated.load("authorization")
    cluster, user = check_kubeconfig(doc)
    assert cluster["server"] == generated.server.url + "/authorize"
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods"}},
    }
    with client_for(tmp_path, cluster["certificate-authority-data"], user) as c:
        response = c.post(cluster["server"] + "?timeout=30s", json=review)
    assert response.status_code == 200, response.text
    assert response.json()["status"]["allowed"] is True


def test_authentication_kubeconfig_works_as_kube_apiserver_uses_it(
    generated: Generated, tmp_path: Path
) -> None:
    (doc,) = generated.load("authentication")
    cluster, user = check_kubeconfig(doc)
    assert cluster["server"] == generated.server.url + "/authenticate"
    review = {
        "apiVersion": "authentication.k8s.io/v1beta1",
        "kind": "TokenReview",
        "spec": {"token": "tok-dev-webhook"},
    }
    with client_for(tmp_path, cluster["certificate-authority-data"], user) as c:
        response = c.post(cluster["server"] + "?timeout=30s", json=review)
    assert response.status_code == 200, response.text
    assert response.json()["status"]["user"]["username"] == "alice"


def test_kubeconfigs_are_private_and_ignored_by_git(generated: Generated) -> None:
    ignored = (generated.out / ".gitignore").read_text().splitlines()
    for key in ("authorization", "authentication", "admission-kubeconfig"):
        path = generated.out / FILES[key]
        assert path.stat().st_mode & 0o777 == 0o600
        assert FILES[key] in ignored


def test_admission_webhook_manifests(generated: Generated) -> None:
    docs = generated.load("webhooks")
    assert [d["kind"] for d in docs] == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
    ca_pem = (generated.server.cert_dir / "ca.crt").read_bytes()
    hooks = [(docs[0], docs[0]["webhooks"][0], "mutate"), (docs[1], docs[1]["webhooks"][0], "validate")]
    for doc, hook, verb in hooks:
        assert doc["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert doc["metadata"]["name"]
        assert len(hook["name"].split(".")) >= 3  # kube-apiserver wants a fully qualified name
        assert hook["clientConfig"]["url"] == f"{generated.server.url}/{verb}"
        assert "service" not in hook["clientConfig"]
        assert b64pem(hook["clientConfig"]["caBundle"]) == ca_pem
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["timeoutSeconds"] == 5
        assert hook["failurePolicy"] == "Fail"
        assert hook["matchPolicy"] == "Equivalent"
        assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]} in (
            hook["namespaceSelector"]["matchExpressions"]
        )
        for rule in hook["rules"]:
            assert set(rule) >= {"operations", "apiGroups", "apiVersions", "resources"}
            assert set(rule["operations"]) <= {"CREATE", "UPDATE", "DELETE", "CONNECT", "*"}
            assert rule.get("scope", "*") in ("Cluster", "Namespaced", "*")
    assert docs[0]["webhooks"][0]["reinvocationPolicy"] == "Never"
    # Deleting a namespace goes to a webhook of its own with no namespaceSelector: a namespace
    # object matches a selector by its own labels, so exempting kube-system there would let
    # kube-system itself be deleted past NamespaceLifecycle.
    assert len(docs[0]["webhooks"]) == 1 and len(docs[1]["webhooks"]) == 2
    namespaces = docs[1]["webhooks"][1]
    assert namespaces["name"] == "namespaces.gatekeeper.local"
    assert namespaces["clientConfig"]["url"] == f"{generated.server.url}/validate"
    assert "namespaceSelector" not in namespaces
    assert namespaces["rules"] == [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
                                    "resources": ["namespaces"], "scope": "Cluster"}]
    assert not any("namespaces" in rule["resources"] for rule in docs[1]["webhooks"][0]["rules"])


def test_admission_configuration_and_its_kubeconfig(generated: Generated, tmp_path: Path) -> None:
    (config,) = generated.load("admission-configuration")
    assert config["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert config["kind"] == "AdmissionConfiguration"
    plugins = {p["name"]: p["configuration"] for p in config["plugins"]}
    assert set(plugins) == {"ValidatingAdmissionWebhook", "MutatingAdmissionWebhook"}
    for plugin in plugins.values():
        assert plugin["apiVersion"] == "apiserver.config.k8s.io/v1"
        assert plugin["kind"] == "WebhookAdmissionConfiguration"
        kubeconfig = Path(plugin["kubeConfigFile"])
        assert (
            kubeconfig.is_absolute()
            and kubeconfig == (generated.out / FILES["admission-kubeconfig"]).resolve()
        )
    (kubeconfig_doc,) = generated.load("admission-kubeconfig")
    assert kubeconfig_doc["apiVersion"] == "v1" and kubeconfig_doc["kind"] == "Config"
    users = {u["name"]: u["user"] for u in kubeconfig_doc["users"]}
    host_port = urlsplit(generated.server.url).netloc  # kube-apiserver matches the URL's host:port
    assert host_port in users
    # The identity in it is accepted by the admission endpoints (caBundle from the manifests).
    hook = generated.load("webhooks")[1]["webhooks"][0]
    with client_for(tmp_path, hook["clientConfig"]["caBundle"], users[host_port]) as c:
        response = c.post(hook["clientConfig"]["url"] + "?timeout=5s", json={})
    assert response.status_code not in (401, 403), response.text


def test_the_flags_are_printed_and_written(generated: Generated) -> None:
    out = generated.out.resolve()
    flags = (generated.out / "kube-apiserver-flags.txt").read_text().splitlines()
    replaced = "--disable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota"
    common = [
        f"--authentication-token-webhook-config-file={out / FILES['authentication']}",
        "--authentication-token-webhook-version=v1",
        "--authentication-token-webhook-cache-ttl=2m0s",
        f"--admission-control-config-file={out / FILES['admission-configuration']}",
        "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
        replaced,
    ]
    assert flags == [f"--authorization-config={out / 'authorization-config.yaml'}", *common]
    legacy = (generated.out / "kube-apiserver-flags-legacy.txt").read_text().splitlines()
    assert legacy == [
        "--authorization-mode=Node,Webhook,RBAC",
        f"--authorization-webhook-config-file={out / FILES['authorization']}",
        "--authorization-webhook-version=v1",
        "--authorization-webhook-cache-authorized-ttl=5m0s",
        "--authorization-webhook-cache-unauthorized-ttl=30s",
        *common,
    ]
    for flag in flags:
        assert flag in generated.stdout


def test_the_authorization_configuration(generated: Generated) -> None:
    (doc,) = yaml.safe_load_all((generated.out / "authorization-config.yaml").read_text())
    assert doc["apiVersion"] == "apiserver.config.k8s.io/v1" and doc["kind"] == "AuthorizationConfiguration"
    node, webhook, rbac = doc["authorizers"]
    assert node == {"type": "Node", "name": "node"} and rbac == {"type": "RBAC", "name": "rbac"}
    assert webhook["type"] == "Webhook" and webhook["name"] == "gatekeeper"
    assert webhook["webhook"] == {
        "timeout": "3s",
        "authorizedTTL": "5m0s",
        "unauthorizedTTL": "30s",
        "subjectAccessReviewVersion": "v1",
        "matchConditionSubjectAccessReviewVersion": "v1",
        "failurePolicy": "NoOpinion",
        "connectionInfo": {
            "type": "KubeConfigFile",
            "kubeConfigFile": str(generated.out.resolve() / FILES["authorization"]),
        },
        "matchConditions": [{"expression": '!("system:nodes" in request.groups)'}],
    }


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    for args in (
        ["--url", "http://example.com"],
        ["--url", "https://h:1", "--timeout-seconds", "31"],
        ["--url", "https://h:1", "--authorization-timeout-seconds", "0"],
        ["--url", "https://h:1", "--authorized-ttl", "five minutes"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "gatekeeper.cli", "webhook-config", *args, "--cert-dir", str(tmp_path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1 and "gatekeeper webhook-config:" in result.stderr
