"""Fuzz inputs for every route, shared by the in-process run (inproc.py) and the HTTP run (http.py).

Input number i of seed s is made by `random.Random(f"{s}:{i}")` alone, so any input can be
rebuilt and sent again from its two numbers. Most inputs are mutated webhook reviews (the
conformance requests through tests/fuzz/mutations.py); the rest vary the request itself: every
route (the webhooks, /healthz, /readyz, /metrics, /quota, /openapi.json and paths that are not
routes), every method, odd path suffixes and query strings, Content-Type, Host and Authorization
headers (bearer and basic credentials, good and malformed), and who calls (the kube-apiserver
client certificate, another user's certificate, no certificate).

`check` says what is wrong with an answer: a 5xx, a traceback, a redirect, a body that is not
JSON, or a refusal that is not a Kubernetes Status with its code and a message.
"""

from __future__ import annotations

import base64
import collections
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz.mutations import ODD_STRINGS, mutate

ROOT = Path(__file__).resolve().parents[1]
WEBHOOKS = ("/authorize", "/authenticate", "/mutate", "/validate", "/admit")
ADMISSION_ENDPOINTS = ("/mutate", "/validate", "/admit")
READERS = ("/healthz", "/readyz", "/metrics", "/quota", "/openapi.json")
OTHER_PATHS = ("/", "/docs", "/redoc", "/api/v1/pods", "/version", "/livez", "*", "/metrics/x", "/quota/")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO")
KNOWN = frozenset((*WEBHOOKS, *READERS))
CERTS = ("kube-apiserver", "alice", "none")  # which client certificate the request's connection shows
PATH_SUFFIXES = ("", "/", "%0a", "%0d%0a", "%00", "%20", "/..", "//", ".json", "%2f", "/%2e%2e/metrics",
                 ";x", "%", "%zz", "\u00e9".encode().decode("latin-1"))
QUERIES = ("", "timeout=30s", "timeout=10s&timeout=x", "namespace=", "namespace=default",
           "namespace=%00", "namespace=" + "a" * 300, "namespace=%zz", "namespace=a&namespace=b",
           "q=" + "x" * 10_000, "%ff=%fe", "=", "&&&", "namespace=../x")
CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "", "text/plain",
                 "application/x-www-form-urlencoded", "application/json-patch+json", "APPLICATION/JSON",
                 "application/json;charset=latin-1", "multipart/form-data; boundary=x", "*/*",
                 "application/yaml", "application/vnd.kubernetes.protobuf", "application/json\t")
HOSTS = ("evil.example", "", "127.0.0.1:1", "a" * 1000, "[::1]", "localhost:8443", "x y")
TOKENS = "tok-fuzz-alice,alice,alice-uid,\"dev,ops\"\ntok-fuzz-bob,bob,,\n"
# Basic-auth rows: one plaintext, one hashed (cheap parameters: the fuzzer pays for every check).
BASIC_USERS = {"carol": "carol-plain-pw", "dave": "dave-hashed-pw"}
HASHED_SHARE = 0.002  # well-formed Basic credentials cost a password hash each: keep them rare


@dataclass(frozen=True)
class Seed:
    endpoint: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class Input:
    index: int
    name: str
    method: str
    target: str  # the request target's path as sent (percent-encoded), without the query
    query: str
    cert: str  # one of CERTS
    headers: tuple[tuple[str, str], ...]
    body: bytes
    chunked: bool

    def describe(self) -> str:
        query = f"?{self.query[:100]}" if self.query else ""
        return f"{self.method} {self.target}{query} as {self.cert} [{self.name}], {len(self.body)} bytes"


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


def make(seed: int, index: int, corpus: list[Seed]) -> Input:
    """Input number `index` of `seed`: 70 % mutated reviews, the rest every other kind of request."""
    rng = random.Random(f"{seed}:{index}")
    roll = rng.random()
    if roll < 0.70:
        spec = _review(rng, corpus)
        if rng.random() < 0.15:
            spec = _twist(rng, spec)
    elif roll < 0.85:
        spec = _reader(rng, corpus)
    else:
        spec = _twist(rng, _twist(rng, _review(rng, corpus)))
        spec["method"] = rng.choice(METHODS)
        spec["target"] = rng.choice((*WEBHOOKS, *READERS, *OTHER_PATHS)) + rng.choice(PATH_SUFFIXES)
        spec["name"] = "request:" + spec["name"]
    return Input(index=index, chunked=spec.pop("chunked", False), **spec)


def _review(rng: random.Random, corpus: list[Seed]) -> dict[str, Any]:
    target = rng.choice(corpus)
    name, body = mutate(target.doc, rng)
    return {"name": f"review:{name}", "method": "POST", "target": target.endpoint, "query": "",
            "cert": "kube-apiserver", "headers": (("content-type", "application/json"),), "body": body,
            "chunked": rng.random() < 0.1}


def _reader(rng: random.Random, corpus: list[Seed]) -> dict[str, Any]:
    path = rng.choice(READERS)
    query = rng.choice(QUERIES) if rng.random() < 0.5 else ""
    cert = rng.choice(CERTS) if rng.random() < 0.3 else "kube-apiserver"
    spec = {"name": "reader", "method": rng.choice(("GET", "GET", "GET", "HEAD")), "target": path,
            "query": query, "cert": cert, "headers": (), "body": b"", "chunked": False}
    return _twist(rng, spec) if rng.random() < 0.3 else spec


def _twist(rng: random.Random, spec: dict[str, Any]) -> dict[str, Any]:
    """One change to the request around the body: path, query, headers or who calls."""
    kind = rng.choice(("path", "query", "content-type", "host", "authorization", "cert", "headers"))
    headers = dict(spec["headers"])
    if kind == "path":
        spec["target"] = rng.choice(("", "/", "//")) + spec["target"].lstrip("/") + rng.choice(PATH_SUFFIXES)
        if rng.random() < 0.2:
            spec["target"] = spec["target"].upper()
    elif kind == "query":
        spec["query"] = rng.choice(QUERIES)
    elif kind == "content-type":
        value = rng.choice(CONTENT_TYPES)
        if value:
            headers["content-type"] = value
        else:
            headers.pop("content-type", None)
    elif kind == "host":
        headers["host"] = rng.choice(HOSTS)
    elif kind == "authorization":
        headers["authorization"] = authorization(rng)
        if rng.random() < 0.7:
            spec["cert"] = "none"
    elif kind == "cert":
        spec["cert"] = rng.choice(CERTS)
    else:
        headers.update(_odd_headers(rng))
    spec["headers"] = tuple(headers.items())
    spec["name"] = f"{spec['name']}+{kind}"
    return spec


def authorization(rng: random.Random) -> str:
    """An Authorization header: well-formed or not, known credentials or not."""
    if rng.random() < HASHED_SHARE:
        user = rng.choice([*BASIC_USERS, "nobody"])
        password = BASIC_USERS.get(user, "x") if rng.random() < 0.5 else "wrong"
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    odd = rng.choice(ODD_STRINGS).encode("utf-8", "surrogatepass").decode("latin-1")
    return rng.choice([
        "Bearer tok-fuzz-alice", "Bearer  tok-fuzz-alice", "bearer tok-fuzz-bob", "BEARER tok-fuzz-alice",
        "Bearer unknown-token", "Bearer", "Bearer ", "Bearer tok-fuzz-alice extra", "Bearer\ttok-fuzz-alice",
        "Bearer " + "t" * 10_000, f"Bearer {odd}", "Basic", "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), f"Basic {odd}", "Negotiate abc", "", " ",
        "Digest username=x", odd, "Bearer tok-fuzz-alice, Basic x",
    ])


def _odd_headers(rng: random.Random) -> dict[str, str]:
    return rng.choice([
        {"content-encoding": "gzip"}, {"expect": "100-continue"}, {"accept": "application/yaml"},
        {"x-forwarded-for": "10.0.0.1"},
        {"x-remote-user": "system:admin", "x-remote-group": "system:masters"},
        {"impersonate-user": "system:admin"}, {"cookie": "a=" + "b" * 4000}, {"accept-encoding": "br, gzip"},
        {f"x-h-{i}": "v" for i in range(100)}, {"x-odd": "\u00ff\u00fe"}, {"audit-id": "x" * 300},
    ])


# -- answers ---------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


def check(answer: Answer, method: str = "POST") -> str | None:
    """What is wrong with an answer to a request of `method`, or None."""
    if answer.status >= 500:
        return f"HTTP {answer.status}"
    text = answer.body.decode("utf-8", "replace")
    if "Traceback" in text or 'File "' in text:
        return "traceback in response"
    if 300 <= answer.status < 400:
        return f"redirect {answer.status}"
    if method == "HEAD" or (answer.content_type.startswith("text/plain") and answer.status == 200):
        return None  # HEAD has no body; /metrics is Prometheus text
    try:
        body = json.loads(text)
    except ValueError:
        return "response is not JSON"
    if answer.status >= 400:
        is_status = isinstance(body, dict) and body.get("kind") == "Status"
        if not (is_status and body.get("code") == answer.status):
            return "refusal is not a Status with its code"
        if not body.get("message"):
            return "refusal without a message"
    return None


@dataclass
class Failure:
    index: int
    problem: str
    request: str
    body_head: str


@dataclass
class Report:
    """The totals a run prints: inputs, answers by status, and each kind of failure."""

    start: int = 0
    inputs: int = 0
    seconds: float = 0.0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    routes: collections.Counter[str] = field(default_factory=collections.Counter)
    methods: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[Failure] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    hangs: int = 0

    def add(self, request: Input, status: int, problem: str | None) -> None:
        self.inputs += 1
        self.statuses[status] += 1
        self.kinds[request.name.split(":")[0]] += 1
        self.routes[request.target if request.target in KNOWN else "other"] += 1
        self.methods[request.method] += 1
        if problem:
            self.hangs += problem.startswith("no answer")
            self.failures.append(Failure(request.index, problem, request.describe(),
                                         request.body[:200].decode("latin-1")))

    def merge(self, other: Report) -> None:
        self.inputs += other.inputs
        self.statuses.update(other.statuses)
        self.kinds.update(other.kinds)
        self.routes.update(other.routes)
        self.methods.update(other.methods)
        self.failures.extend(other.failures)
        self.tracebacks.extend(other.tracebacks)
        self.hangs += other.hangs

    def summary(self) -> dict[str, Any]:
        fives = sum(n for status, n in self.statuses.items() if status >= 500)
        return {
            "inputs": self.inputs,
            "first_index": self.start,
            "next_index": self.start + self.inputs,
            "seconds": round(self.seconds, 1),
            "inputs_per_second": round(self.inputs / self.seconds, 1) if self.seconds else 0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "5xx": fives,
            "hangs": self.hangs,
            "tracebacks": len(self.tracebacks),
            "kinds": dict(self.kinds.most_common()),
            "routes": dict(self.routes.most_common()),
            "methods": dict(self.methods.most_common()),
            "failures": len(self.failures),
            "failure_kinds": dict(collections.Counter(f.problem for f in self.failures).most_common()),
            "first_failures": [f.__dict__ for f in sorted(self.failures, key=lambda f: f.index)[:20]],
            "first_tracebacks": sorted(set(self.tracebacks))[:20],
        }

    def ok(self) -> bool:
        return not self.failures and not self.tracebacks


# -- the server's files ------------------------------------------------------------------------

POLICY_LINES = [
    {"user": "kube-apiserver", "nonResourcePath": "*"},
    {"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*"},
    {"group": "viewers", "namespace": "*", "resource": "pods", "readonly": True},
    {"user": "*", "nonResourcePath": "/version", "readonly": True},
    {"user": "carol", "nonResourcePath": "/metrics", "readonly": True},
]


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


def hashed(password: str, salt: bytes = b"fuzz-salt-16byte") -> str:
    """A scrypt column with the cheapest parameters the file accepts (every fuzzed check pays it)."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    from gatekeeper.authn.passwords import b64encode

    key = Scrypt(salt=salt, length=32, n=2, r=1, p=1).derive(password.encode())
    return f"$scrypt$ln=1,r=1,p=1${b64encode(salt)}${b64encode(key)}"


def server_args(workdir: Path) -> list[str]:
    """Write the fuzzed server's files into `workdir`; the `serve` flags that read them."""
    rules = [{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": s}
             for s in POLICY_LINES]
    (workdir / "policy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rules))
    (workdir / "tokens.csv").write_text(TOKENS)
    (workdir / "basic.csv").write_text(
        f"{BASIC_USERS['carol']},carol,carol-uid\n\"{hashed(BASIC_USERS['dave'])}\",dave,dave-uid,viewers\n"
    )
    (workdir / "state.json").write_text(json.dumps(state_objects()))
    return ["--authorization-policy-file", "policy.jsonl", "--token-auth-file", "tokens.csv",
            "--basic-auth-file", "basic.csv", "--state", "state.json", "--store", "sqlite:///fuzz.db",
            "--audit-log-path", "audit.log", "--audit-log-maxsize", "20", "--audit-log-maxbackup", "2"]
