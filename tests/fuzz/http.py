"""The mutation fuzzer: mutated conformance requests POSTed to one real `gatekeeper serve`.

Seeds are the conformance requests (SubjectAccessReviews, AdmissionReviews) and TokenReviews
built here. Input number i is made by `random.Random(f"{seed}:{i}")`, so any failure is
reproducible from its number alone, whatever the thread that sent it. Every response must be
below 500, be JSON, be a Kubernetes Status naming the problem when it is a refusal, carry no
traceback, and arrive within the timeout (a hang is a failure). At the end the server must
still be healthy and its log must hold no traceback.

    python -m tests.fuzz.http --count 20000 --seconds 600 --seed 1
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fuzz.mutations import mutate
from tests.support.server import Server, running_server

ROOT = Path(__file__).resolve().parents[1]
ADMISSION_ENDPOINTS = ("/mutate", "/validate", "/admit")
TIMEOUT = 30.0
POLICY_LINES = [
    {"user": "kube-apiserver", "nonResourcePath": "*"},
    {"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*"},
    {"group": "viewers", "namespace": "*", "resource": "pods", "readonly": True},
    {"user": "*", "nonResourcePath": "/version", "readonly": True},
]
TOKENS = "tok-fuzz-alice,alice,alice-uid,\"dev,ops\"\ntok-fuzz-bob,bob,,\n"


@dataclass(frozen=True)
class Seed:
    endpoint: str
    doc: dict[str, Any]


@dataclass
class Failure:
    index: int
    mutation: str
    endpoint: str
    problem: str
    body_head: str


@dataclass
class Report:
    inputs: int = 0
    seconds: float = 0.0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    mutations: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "seconds": round(self.seconds, 1),
            "per_second": round(self.inputs / self.seconds, 1) if self.seconds else 0,
            "statuses": dict(sorted(self.statuses.items())),
            "mutations": dict(self.mutations.most_common()),
            "failures": [f.__dict__ for f in self.failures[:20]],
        }


def seeds() -> list[Seed]:
    conformance = ROOT / "conformance"
    found = [Seed("/authorize", case["request"])
             for case in json.loads((conformance / "abac" / "cases.json").read_text())]
    admission = json.loads((conformance / "admission" / "cases.json").read_text())
    found += [Seed(ADMISSION_ENDPOINTS[i % 3], case["request"]) for i, case in enumerate(admission)]
    for version in ("v1", "v1beta1"):
        for token in ("tok-fuzz-alice", "tok-fuzz-bob", "unknown"):
            doc = {"apiVersion": f"authentication.k8s.io/{version}", "kind": "TokenReview",
                   "spec": {"token": token, "audiences": ["https://kubernetes.default.svc"]}}
            found.append(Seed("/authenticate", doc))
    return found


def state_objects() -> dict[str, Any]:
    """Every object of every admission case's state, first one of a name wins."""
    cases = json.loads((ROOT / "conformance" / "admission" / "cases.json").read_text())
    items: dict[tuple[str, str, str], Any] = {}
    for case in cases:
        for objects in case["state"].values():
            for obj in objects:
                meta = obj.get("metadata") or {}
                items.setdefault((obj["kind"], meta.get("namespace", ""), meta.get("name", "")), obj)
    return {"apiVersion": "v1", "kind": "List", "items": list(items.values())}


def server_args(workdir: Path) -> list[str]:
    rules = [{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": s}
             for s in POLICY_LINES]
    (workdir / "policy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rules))
    (workdir / "tokens.csv").write_text(TOKENS)
    (workdir / "state.json").write_text(json.dumps(state_objects()))
    return ["--authorization-policy-file", "policy.jsonl", "--token-auth-file", "tokens.csv",
            "--state", "state.json", "--store", "sqlite:///fuzz.db", "--audit-log-path", "audit.log"]



def check(response: httpx.Response) -> str | None:
    """What is wrong with a response, or None."""
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    text = response.text
    if "Traceback" in text or 'File "' in text:
        return "traceback in response"
    try:
        body = response.json()
    except ValueError:
        return "response is not JSON"
    if response.status_code >= 400:
        is_status = isinstance(body, dict) and body.get("kind") == "Status"
        if not (is_status and body.get("code") == response.status_code):
            return "refusal is not a Status with its code"
        if not body.get("message"):
            return "refusal without a message"
    return None


def _send(client: httpx.Client, endpoint: str, body: bytes, chunked: bool) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if chunked:  # no Content-Length: the server must bound what it reads as it streams
        return client.post(endpoint, content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
                           headers=headers)
    return client.post(endpoint, content=body, headers=headers)


def one(client: httpx.Client, seed_list: list[Seed], seed: int, index: int, report: Report,
        lock: threading.Lock) -> None:
    rng = random.Random(f"{seed}:{index}")
    target = rng.choice(seed_list)
    name, body = mutate(target.doc, rng)
    chunked = rng.random() < 0.1
    problem: str | None
    status = 0
    try:
        response = _send(client, target.endpoint, body, chunked)
        status = response.status_code
        problem = check(response)
    except httpx.TimeoutException:
        problem = "no answer within the timeout (hang)"
    except httpx.TransportError as exc:
        # A body over the limit may be refused before it is all sent; the server then closes.
        problem = None if len(body) > 3 * 1024 * 1024 else f"transport error: {exc!r}"
        status = -1
    with lock:
        report.inputs += 1
        report.statuses[status] += 1
        report.mutations[name] += 1
        if problem:
            head = body[:200].decode("latin-1")
            report.failures.append(Failure(index, name, target.endpoint, problem, head))


def fuzz(server: Server, count: int, seconds: float, seed: int = 1, threads: int = 4) -> Report:
    seed_list = seeds()
    report = Report()
    lock = threading.Lock()
    counter = iter(range(count))
    started = time.monotonic()
    deadline = started + seconds

    def worker() -> None:
        context = server.tls_context(server.default_cert)
        with httpx.Client(base_url=server.url, verify=context, timeout=TIMEOUT) as client:
            for index in counter:
                if time.monotonic() > deadline:
                    return
                one(client, seed_list, seed, index, report, lock)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    report.seconds = time.monotonic() - started
    return report


def replay(server: Server, seed: int, index: int) -> int:
    rng = random.Random(f"{seed}:{index}")
    target = rng.choice(seeds())
    name, body = mutate(target.doc, rng)
    chunked = rng.random() < 0.1
    print(f"input {index}: {name} to {target.endpoint}, {len(body)} bytes, chunked={chunked}")
    print(body[:2000].decode("latin-1"))
    context = server.tls_context(server.default_cert)
    with httpx.Client(base_url=server.url, verify=context, timeout=TIMEOUT) as client:
        response = _send(client, target.endpoint, body, chunked)
    print(response.status_code, response.text[:2000])
    print(server.log()[-6000:])
    return 0


def server_problems(server: Server) -> list[str]:
    problems = []
    with server.client() as client:
        if client.get("/healthz").status_code != 200:
            problems.append("server not healthy after fuzzing")
    log = server.log()
    unread = [line for line in log.splitlines() if "could not read the object" in line]
    return problems + sorted(set(tracebacks(log))) + sorted(set(unread))


def tracebacks(log: str) -> list[str]:
    """Each traceback in the log, as its last frame and its exception line."""
    found = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith(" ")), len(lines) - 1)
            frames = [lines[j].strip() for j in range(i + 1, end) if lines[j].strip().startswith("File")]
            frame = frames[-1] if frames else ""
            found.append(f"{frame}: {lines[end]}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--replay", type=int, help="send only input number N and show the answer")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), server_args(Path(tmp))) as server:
        if args.replay is not None:
            return replay(server, args.seed, args.replay)
        report = fuzz(server, args.count, args.seconds, args.seed, args.threads)
        problems = server_problems(server)
    print(json.dumps({**report.summary(), "server_problems": problems}, indent=1))
    return 1 if report.failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
