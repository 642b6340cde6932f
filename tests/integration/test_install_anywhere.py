"""A plain (not editable) install serves with no flags from an empty folder: the example policy
comes from the package, certificates and state go to the data directory, and the offline commands
that read the server's store find the same one instead of creating an empty one where they run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import stop
from tests.support.server import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gatekeeper built as pip builds it (not editable) into a folder of its own; its dependencies come
    from this Python."""
    target = tmp_path_factory.mktemp("site")
    # Build with this Python's setuptools and wheel when it has them (no download), else as pip does.
    local = all(importlib.util.find_spec(name) for name in ("setuptools", "wheel"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         *(["--no-build-isolation"] if local else []), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    assert not (target / "gatekeeper" / "defaults" / "abac.jsonl").is_symlink()
    return target


def _env(site: Path, data: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site), "GATEKEEPER_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def serving(installed: Path, tmp_path: Path) -> Iterator[tuple[Path, Path, int, Path]]:
    empty, data, port = tmp_path / "empty", tmp_path / "data", free_port()
    empty.mkdir()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gatekeeper.cli", "serve", "--secure-port", str(port)],
            cwd=empty,
            env=_env(installed, data),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _healthy(data, port) or process.poll() is not None, timeout=30)
        assert process.poll() is None, log.read_text()
        yield empty, data, port, log
    finally:
        stop(process, timeout=10)


def _healthy(data: Path, port: int) -> bool:
    certs = data / "certs"
    if not (certs / "kube-apiserver.key").exists():
        return False
    try:
        with _client(data, port) as client:
            return client.get("/healthz").status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def _client(data: Path, port: int) -> httpx.Client:
    import ssl

    certs = data / "certs"
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.load_cert_chain(str(certs / "kube-apiserver.crt"), str(certs / "kube-apiserver.key"))
    return httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=10)


def test_serve_with_no_flags_from_an_empty_folder_decides_with_the_packaged_policy(
    serving: tuple[Path, Path, int, Path], installed: Path
) -> None:
    empty, data, port, log = serving
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "bob",
            "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "projectCaribou"},
        },
    }
    with _client(data, port) as client:
        answer = client.post("/authorize", json=review).json()
    assert answer["status"]["allowed"] is True, answer
    assert list(empty.iterdir()) == []  # no ./certs, no ./var
    assert (data / "gatekeeper.db").exists()
    text = log.read_text()
    assert f"data directory {data} (--data-dir)" in text
    assert (
        f"policy {installed / 'gatekeeper' / 'defaults' / 'abac.jsonl'} (--authorization-policy-file)" in text
    )
    assert f"state sqlite:///{data / 'gatekeeper.db'}" in text


def test_the_offline_commands_find_the_servers_store_from_anywhere(
    serving: tuple[Path, Path, int, Path], installed: Path, tmp_path: Path
) -> None:
    _empty, data, _port, _log = serving
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = elsewhere / "state.yaml"
    state.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\nstatus: {phase: Active}\n")
    env = _env(installed, data)
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "gatekeeper.cli", *args],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run("state", "sync", str(state)).returncode == 0
    assert "name: shop" in run("state", "show").stdout
    refused = run("state", "reset")
    assert (
        refused.returncode == 1 and "would delete 1 objects" in refused.stderr and "--yes" in refused.stderr
    )
    assert run("state", "reset", "--yes").returncode == 0
    assert "name: shop" not in run("state", "show").stdout
    assert list(elsewhere.iterdir()) == [state]


def test_state_show_with_no_store_refuses_instead_of_creating_one(tmp_path: Path) -> None:
    data = tmp_path / "never-served"
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "state", "show", "--data-dir", str(data)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"gatekeeper state: no store at {data / 'gatekeeper.db'} "
        f"(the default --store, in --data-dir {data}): "
        f"run `gatekeeper serve` or `gatekeeper state sync` first, or name the server's store with "
        f"--store sqlite:///PATH or --store etcd://HOST:PORT"
    )
    assert not data.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
