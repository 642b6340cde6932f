"""100 reloads of the policy, the token file and the state manifests while a real server is under load.

Three load threads hammer /authorize, /authenticate and /admit over keep-alive connections while
the test writes, in turn, a broken and then a good version of one of the three files: by
atomic rename (write elsewhere, os.replace) or in place (truncate and write the same inode).
Every version of a file makes a different, recognisable answer:

- policy: alice's rule sits on line BASE + k of good version k (status.reason names the line);
  a broken version puts it on line BASE + 1000 + k and adds a line that does not parse;
- token file: the load token belongs to user-k; a broken version names user-broken-k and has a
  row with two columns;
- manifests: the LimitRange's default memory is (k+1)Mi, which /admit patches into a pod without
  resources; a broken version says 999Mi and has a document that is not YAML.

Asserted: no request fails (every answer is a 200 with a decision), every answer comes from a
good version, each thread sees versions only go forward, and every good version is seen after
its reload. `python -m pytest -s` prints the figures.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import Server, running_server

RELOADS = 100
WAIT = 15.0
KINDS = ("policy", "tokens", "manifests")
METHODS = ("rename", "in-place")
FILES = {"policy": "policy.jsonl", "tokens": "tokens.csv", "manifests": "state.yaml"}
CHECK_NAMES = {"policy": "authorization policy", "tokens": "token file", "manifests": "state manifests"}
HEADER = [
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}',
]
BASE = len(HEADER) + 1  # good version 0 has alice's rule on line BASE
ALICE = '{"user":"alice","namespace":"*","resource":"pods"}'


def policy(version: int, broken: bool) -> str:
    pad = version + (1000 if broken else 0)
    lines = [*HEADER, *(["# padding"] * pad), ALICE]
    return "\n".join([*lines, '{"user": "late",'] if broken else lines) + "\n"


def tokens(version: int, broken: bool) -> str:
    if broken:
        return f'tok-load,user-broken-{version},uid,"g"\nonly,two\n'
    return f'tok-load,user-{version},uid,"g"\n'


def manifests(version: int, broken: bool) -> str:
    memory = "999Mi" if broken else f"{version + 1}Mi"
    text = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: load}\nstatus: {phase: Active}\n---\n"
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: defaults, namespace: load}\n"
        f"spec:\n  limits:\n  - type: Container\n    default: {{memory: {memory}}}\n"
    )
    return text + "---\nkind: [\n" if broken else text


CONTENT: dict[str, Callable[[int, bool], str]] = {"policy": policy, "tokens": tokens, "manifests": manifests}


def write(path: Path, text: str, method: str) -> None:
    data = text.encode()
    if method == "rename":
        staging = path.with_name(f".{path.name}.new")
        staging.write_bytes(data)
        os.replace(staging, path)
    else:  # the same inode, truncated and written: a reader may catch it half written
        with open(path, "r+b") as f:
            f.truncate(0)
            f.write(data)


SAR = {
    "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
    "spec": {"user": "alice", "resourceAttributes": {"namespace": "load", "verb": "get", "resource": "pods"}},
}
TOKEN_REVIEW = {
    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "tok-load"},
}
ADMISSION_REVIEW = {
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {"uid": "load-1", "name": "p", "namespace": "load", "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "userInfo": {"username": "alice"}, "dryRun": True,
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "load"},
                           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
}


def version_of_policy(body: dict[str, Any]) -> int:
    status = body["status"]
    assert status["allowed"] is True, status
    line = int(status["reason"].rsplit(":", 1)[1])
    return line - BASE


def version_of_tokens(body: dict[str, Any]) -> int:
    name = body["status"]["user"]["username"]
    match = re.fullmatch(r"user-(\d+)", name)
    assert match, name
    return int(match.group(1))


def version_of_manifests(body: dict[str, Any]) -> int:
    response = body["response"]
    assert response["allowed"] is True, response
    patch = base64.b64decode(response["patch"]).decode()
    match = re.search(r'"memory": ?"(\d+)Mi"', patch)
    assert match, patch
    return int(match.group(1)) - 1


LOADS = {
    "policy": ("/authorize", SAR, version_of_policy),
    "tokens": ("/authenticate", TOKEN_REVIEW, version_of_tokens),
    "manifests": ("/admit", ADMISSION_REVIEW, version_of_manifests),
}


@dataclass
class Load:
    """One thread's view: every version it saw, in order, and what went wrong."""

    kind: str
    seen: list[int] = field(default_factory=list)
    requests: int = 0
    failures: list[str] = field(default_factory=list)

    def run(self, server: Server, stop: threading.Event) -> None:
        path, body, version_of = LOADS[self.kind]
        with server.client() as client:
            while not stop.is_set():
                self.requests += 1
                try:
                    response = client.post(path, json=body)
                    if response.status_code != 200:
                        raise AssertionError(f"HTTP {response.status_code}: {response.text[:300]}")
                    version = version_of(response.json())
                except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
                    self.failures.append(f"{self.kind}: {exc!r}")
                    continue
                if not self.seen or self.seen[-1] != version:
                    self.seen.append(version)

    @property
    def latest(self) -> int | None:
        return self.seen[-1] if self.seen else None


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for kind in KINDS:
        (tmp_path / FILES[kind]).write_text(CONTENT[kind](0, False))
    return tmp_path


@pytest.fixture
def server(workdir: Path) -> Iterator[Server]:
    args = ["--authorization-policy-file", FILES["policy"], "--token-auth-file", FILES["tokens"],
            "--state", FILES["manifests"], "--store", "memory://", "--reload-interval", "0.05",
            "--reload-settle", "0.2",
            "--enable-admission-plugins", "NamespaceLifecycle,LimitRanger"]
    with running_server(workdir, args) as running:
        yield running


def checks(client: httpx.Client) -> dict[str, Any]:
    return dict(client.get("/readyz").json()["checks"])


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {WAIT}s: {what}")
        time.sleep(0.01)


def test_a_hundred_reloads_under_load(server: Server, workdir: Path) -> None:
    loads = {kind: Load(kind) for kind in KINDS}
    stop = threading.Event()
    threads = [threading.Thread(target=load.run, args=(server, stop)) for load in loads.values()]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    versions = dict.fromkeys(KINDS, 0)
    methods = {method: 0 for method in METHODS}
    try:
        with server.client() as probe:
            wait_until(lambda: all(load.latest == 0 for load in loads.values()), "version 0 everywhere")
            for i in range(RELOADS):
                kind, broken = KINDS[(i // 2) % 3], i % 2 == 0
                method = METHODS[(i // 2 + i) % 2]
                methods[method] += 1
                before = checks(probe)[CHECK_NAMES[kind]]
                version = versions[kind] + (0 if broken else 1)
                write(workdir / FILES[kind], CONTENT[kind](version, broken), method)
                if broken:
                    wait_until(
                        lambda k=kind, b=before: checks(probe)[CHECK_NAMES[k]]["failures"] > b["failures"],
                        f"{kind} broken version {version} refused",
                    )
                else:
                    versions[kind] = version
                    wait_until(
                        lambda k=kind, v=version: loads[k].latest == v, f"{kind} version {version} in force"
                    )
            ready = checks(probe)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    elapsed = time.monotonic() - started

    total = sum(load.requests for load in loads.values())
    failed = [f for load in loads.values() for f in load.failures]
    print(f"\nreload under load: {RELOADS} reloads ({RELOADS // 2} good, {RELOADS // 2} broken; "
          f"{methods['rename']} by rename, {methods['in-place']} in place) in {elapsed:.1f}s; "
          f"{total} requests, {len(failed)} failed; "
          + ", ".join(f"{k} {loads[k].requests}" for k in KINDS))
    assert failed == [], failed[:5]
    for kind, load in loads.items():
        # forward, one version at a time, never a broken one
        assert load.seen == list(range(versions[kind] + 1)), (kind, load.seen)
        assert ready[CHECK_NAMES[kind]]["ok"], ready
    assert sum(versions.values()) == RELOADS // 2


def test_an_in_place_write_stalled_after_truncating_never_takes_effect(server: Server, workdir: Path) -> None:
    """A writer descheduled between truncate and write leaves an empty file for a while; an empty
    policy is valid (no rules), so loading it would deny everything, the caller's own rule too."""
    load = Load("policy")
    stop = threading.Event()
    thread = threading.Thread(target=load.run, args=(server, stop))
    thread.start()
    try:
        wait_until(lambda: load.latest == 0, "version 0")
        with open(workdir / FILES["policy"], "r+b") as f:
            f.truncate(0)
            f.flush()
            time.sleep(0.5)  # ten reload intervals with an empty file
            f.write(policy(1, False).encode())
        wait_until(lambda: load.latest == 1, "version 1 in force")
    finally:
        stop.set()
        thread.join()
    assert load.failures == []
    assert load.seen == [0, 1]
