"""deploy/ stays what gatekeeper itself would write: the webhook configurations are webhook-config's
(but for the documented caBundle placeholder), and the Deployment passes only flags serve has.
tests/e2e/test_deploy.py validates the whole kustomization against a real kube-apiserver."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

import yaml

from gatekeeper import pki
from gatekeeper.cli import build_parser, main

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PLACEHOLDER = base64.b64encode(b"REPLACE WITH THE BASE64 OF CA.CRT").decode()
WEBHOOK_CONFIG = [
    "webhook-config",
    "--url",
    "https://gatekeeper.gatekeeper-system.svc:443",
    "--service",
    "gatekeeper-system/gatekeeper",
    "--exempt-namespace",
    "kube-system",
    "--exempt-namespace",
    "gatekeeper-system",
]


def _docs(name: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def _without_ca(docs: list[Any]) -> list[Any]:
    for doc in docs:
        for hook in doc["webhooks"]:
            hook["clientConfig"]["caBundle"] = PLACEHOLDER
    return docs


def test_the_webhook_configurations_are_webhook_configs_own(tmp_path: Path) -> None:
    pki.ensure_dev_pki(tmp_path / "pki", ["gatekeeper.gatekeeper-system.svc"])
    out = tmp_path / "out"
    assert main([*WEBHOOK_CONFIG, "--cert-dir", str(tmp_path / "pki"), "--out-dir", str(out)]) == 0
    written = _without_ca(_docs_of(out / "admission-webhooks.yaml"))
    assert _docs("webhooks.yaml") == written
    services = {hook["clientConfig"]["service"]["name"] for doc in written for hook in doc["webhooks"]}
    assert services == {"gatekeeper"}


def _docs_of(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    manifests = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    kinds = {doc["kind"] for name in manifests for doc in _docs(name)}
    assert {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    } <= kinds


def test_the_deployment_passes_only_flags_serve_has() -> None:
    (deployment,) = _docs("deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command, *flags = container["args"]
    serve = _subparser(build_parser(), command)
    known = {option for action in serve._actions for option in action.option_strings}
    assert [flag for flag in flags if flag.split("=", 1)[0] not in known] == []
    assert deployment["spec"]["replicas"] == 3
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = sub.choices[name]
    return found


def test_the_cluster_policy_lints_clean() -> None:
    assert main(["lint", str(DEPLOY / "policy.jsonl")]) == 0
