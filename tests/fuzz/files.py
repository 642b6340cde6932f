"""The file fuzz run: mutated versions of every file `gatekeeper serve` reads, through its loaders.

Kinds: the ABAC policy (JSON and YAML lines), the token file and the basic-auth file (CSV), the
state manifests (YAML and JSON, with Secrets), the client CA bundle, the serving certificate and
key, and the kubeconfig of live state. Each starts from real seeds and is mutated by lines
(dropped, doubled, swapped, odd lines put in), by bytes (truncated, flipped, invalid UTF-8, BOM,
CRLF) and, for the JSON and YAML kinds, by structure (the request mutations of mutations.py, then
written back as JSON or YAML; YAML alias fans and deep nesting). Input i of seed s is
`random.Random(f"{s}:{i}")` alone.

A loader may refuse a file, but only with its own error, naming the file, and never quoting a
secret (every token, password, key and Secret value in the seeds holds a marker the message must
not contain); anything else raised is a crash. An input that takes longer than the timeout is a
hang. `--reload N` then sends N inputs of the reloadable kinds through a real server instead:
each is written (atomic rename) over its watched file and applied with SIGHUP; /readyz must answer
(no 5xx) with the failure and the file's name and no secret, the last good version must stay in
force (a probe request still gets its answer), and the good file goes back after.

    python -m tests.fuzz.files --count 100000 --seed 1 [--start 0] [--kinds policy,token]
    python -m tests.fuzz.files --reload 300 --seed 1
    python -m tests.fuzz.files --replay 1234 --seed 1
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import json
import logging
import os
import random
import signal
import ssl
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gatekeeper import pki
from gatekeeper.authn.basicauth import load_basic_auth_file
from gatekeeper.authn.csvfile import CredentialFileError
from gatekeeper.authn.tokenfile import load_token_file
from gatekeeper.authn.x509 import X509Authenticator
from gatekeeper.authz.evaluator import load_evaluator
from gatekeeper.authz.policy import PolicyError
from gatekeeper.backends.manifests import ManifestError, load_manifests
from tests.fuzz import inputs
from tests.fuzz.mutations import ODD_STRINGS, STRUCTURAL

POLICIES = inputs.ROOT.parent / "policies"
EXAMPLES = inputs.ROOT.parent / "examples"
SECRET = "Zq9SECRETmark"  # in every secret of every seed: no error message may quote it
TIMEOUT = 30.0
# Size comes from whole lines and files repeated; a structural mutation keeps the file small, since
# the YAML loaders (PyYAML's pure-Python one in the kubernetes client) take seconds per megabyte.
FILE_STRUCTURAL = {name: m for name, m in STRUCTURAL.items() if name not in ("many_elements", "huge_string")}
MAX_REPEAT = 1_000_000  # bytes a repeated file grows to, at most
MAX_FILE = 8 << 20  # chained mutations (repeat, then 5,000 more lines) could otherwise build gigabytes
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the fuzzer's own parsing and writing only
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
TLS_ERRORS = (ssl.SSLError, OSError, ValueError)  # what server/tls.py catches when a new file is refused
ODD_LINES = ["", "#", "# comment", "{", "}", "---", "...", "- ", "a: [", "\ufeff", "\t", "null", "[]", "{}",
             "*a", "&a [1]", "!!python/object/apply:os.system ['true']", "!!binary AAAA", "\x00", "\r",
             '"', '""', ",", ",,,,,,,,", "a,b", '"a,b', "é", "\u2028", "x" * 70_000, "1e999", "-1",
             "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----", "MII" + "A" * 64,
             "key: value", "%YAML 1.1", "%TAG ! tag:x,2000:", "? a", ": b", "!<tag:yaml.org,2002:str> x"]


@dataclass(frozen=True)
class Kind:
    name: str
    file_name: str
    seeds: list[bytes]
    load: Callable[[Path], object]
    errors: tuple[type[BaseException], ...]
    structured: str | None = None  # "json", "yaml" or "jsonl": how structural mutations write it back
    names_file: bool = True  # its errors name the file


# -- seeds ----------------------------------------------------------------------------------


def _policy_seeds() -> list[bytes]:
    rules = [{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": s}
             for s in inputs.POLICY_LINES]
    found = ["".join(json.dumps(r) + "\n" for r in rules).encode(), (POLICIES / "abac.jsonl").read_bytes()]
    cases = json.loads((inputs.ROOT / "conformance" / "abac" / "cases.json").read_text())
    seen: set[str] = set()
    for case in cases:
        text = "\n".join(case["policy"]) + "\n"
        if text not in seen and len(seen) < 40:
            seen.add(text)
            found.append(text.encode())
    found.append(b"".join(yaml.safe_dump(r, default_flow_style=True, width=10**9).encode() for r in rules))
    return found


def _credential_seeds(kind: str) -> list[bytes]:
    if kind == "token":
        example = (POLICIES / "tokens.csv").read_bytes()
        return [f"{SECRET}-a,alice,alice-uid,\"dev,ops\"\n{SECRET}-b,bob,,\n{SECRET}-c,carol,c,x\n".encode(),
                example.replace(b"devonly", SECRET.encode())]
    example = (POLICIES / "basic_auth.csv").read_bytes()
    return [f"{SECRET}-pw,carol,carol-uid\n\"{inputs.hashed(SECRET)}\",dave,dave-uid,viewers\n".encode(),
            example.replace(b"devonly", SECRET.encode())]


def _manifest_objects() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = inputs.state_objects()["items"]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "fuzz-secret", "namespace": "test", "annotations": {"a": "b"}},
              "data": {"password": base64.b64encode(SECRET.encode()).decode()},
              "stringData": {"token": SECRET}}
    return [*items[:40], secret]


def _manifest_seeds() -> list[bytes]:
    objects = _manifest_objects()
    state = (EXAMPLES / "admission" / "state.yaml").read_bytes()
    return [json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}).encode(),
            "---\n".join(yaml.safe_dump(o) for o in objects).encode(),
            state + b"---\n" + yaml.safe_dump(objects[-1]).encode()]


@dataclass
class Pki:
    ca: bytes
    ca_two: bytes
    cert: bytes
    key: bytes
    client_cert: bytes
    client_key: bytes


def make_pki(directory: Path) -> Pki:
    ca_pair, server = pki.ensure_dev_pki(directory)
    client = pki.ensure_dev_client(directory, "kube-apiserver")
    other = pki.write(pki.make_ca("other-ca"), directory / "other", "ca")
    ca = ca_pair.cert.read_bytes()
    return Pki(ca, ca + other.cert.read_bytes(), server.cert.read_bytes(), server.key.read_bytes(),
               client.cert.read_bytes(), client.key.read_bytes())


def _kubeconfig_seed(keys: Pki) -> bytes:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "fuzz", "preferences": {},
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                               "certificate-authority-data": b64(keys.ca)}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(keys.client_cert),
                                         "client-key-data": b64(keys.client_key)}},
                  {"name": "t", "user": {"token": SECRET}},
                  {"name": "p", "user": {"username": "admin", "password": SECRET}}],
        "contexts": [{"name": "fuzz", "context": {"cluster": "c", "user": "u", "namespace": "default"}},
                     {"name": "tok", "context": {"cluster": "c", "user": "t"}}],
    }
    return yaml.safe_dump(config).encode()


def kinds(directory: Path) -> dict[str, Kind]:
    keys = make_pki(directory / "pki")

    good_cert, good_key = directory / "pki" / "server.crt", directory / "pki" / "server.key"

    def tls(cert_path: Path, key_path: Path) -> object:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # as uvicorn's create_ssl_context builds it
        context.load_cert_chain(cert_path, key_path)
        context.load_verify_locations(directory / "pki" / "ca.crt")
        return context

    def kubeconfig(path: Path) -> object:
        from gatekeeper.backends.kube.client import _configuration

        return _configuration(str(path))

    from gatekeeper.backends.kube.client import KubeConfigError

    found = [
        Kind("policy", "policy.jsonl", _policy_seeds(), load_evaluator, (PolicyError,), "jsonl"),
        Kind("token", "tokens.csv", _credential_seeds("token"), load_token_file, (CredentialFileError,)),
        Kind("basic", "basic.csv", _credential_seeds("basic"), load_basic_auth_file, (CredentialFileError,)),
        Kind("manifests", "state.yaml", _manifest_seeds(), lambda p: load_manifests([p]), (ManifestError,),
             "yaml"),
        Kind("client-ca", "ca.crt", [keys.ca, keys.ca_two], X509Authenticator.from_file, (ValueError,)),
        Kind("tls-cert", "server.crt", [keys.cert], lambda p: tls(p, good_key), TLS_ERRORS, names_file=False),
        Kind("tls-key", "server.key", [keys.key], lambda p: tls(good_cert, p), TLS_ERRORS, names_file=False),
        Kind("kubeconfig", "kubeconfig", [_kubeconfig_seed(keys)], kubeconfig, (KubeConfigError,), "yaml"),
    ]
    return {kind.name: kind for kind in found}


# -- mutations --------------------------------------------------------------------------------


def mutate_file(kind: Kind, rng: random.Random) -> tuple[str, bytes]:
    data = rng.choice(kind.seeds)
    names = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if kind.structured and rng.random() < 0.3:
            name, data = _structural(kind, data, rng)
        elif rng.random() < 0.5:
            name, data = _by_line(data, rng)
        else:
            name, data = _by_byte(data, rng)
        names.append(name)
        if len(data) > MAX_FILE:
            data, names = data[:MAX_FILE], [*names, "cut"]
        if name == "yaml-alias-fan":
            break  # parsed again it would be expanded here, by the fuzzer
    return "+".join(names), data


def _by_line(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    lines = data.split(b"\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    name = rng.choice(("drop", "double", "swap", "odd-line", "odd-word", "many-lines", "crlf"))
    if name == "drop":
        del lines[i]
    elif name == "double":
        lines.insert(i, lines[i])
    elif name == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif name == "odd-line":
        lines.insert(i, rng.choice(ODD_LINES).encode("utf-8", "surrogatepass"))
    elif name == "odd-word":
        words = lines[i].split(b",") if b"," in lines[i] else lines[i].split(b" ")
        words[rng.randrange(len(words))] = rng.choice(ODD_STRINGS).encode("utf-8", "surrogatepass")
        lines[i] = (b"," if b"," in lines[i] else b" ").join(words)
    elif name == "many-lines":
        lines.extend([lines[i]] * rng.choice((100, 5000)))
    else:
        return name, data.replace(b"\n", b"\r\n")
    return name, b"\n".join(lines)


def _by_byte(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    name = rng.choice(("truncate", "flip", "invalid-utf8", "bom", "empty", "nul", "repeat"))
    at = rng.randrange(len(data) + 1)
    if name == "truncate":
        return name, data[:at]
    if name == "flip":
        flipped = bytearray(data or b"x")
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return name, bytes(flipped)
    if name == "invalid-utf8":
        return name, data[:at] + rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80")) + data[at:]
    if name == "bom":
        return name, rng.choice((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) + data
    if name == "empty":
        return name, rng.choice((b"", b"\n", b" ", b"\n\n\n"))
    if name == "nul":
        return name, data[:at] + b"\x00" + data[at:]
    return name, data * min(rng.choice((2, 50)), max(1, MAX_REPEAT // max(1, len(data))))


def _structural(kind: Kind, data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A structural mutation of the parsed document, written back in the kind's format."""
    try:  # as JSON values: YAML also has bytes (!!binary), dates and non-string keys
        docs = json.loads(json.dumps(_parse(kind, data), default=str))
    except (ValueError, TypeError, yaml.YAMLError, RecursionError):
        return _by_byte(data, rng)
    if not docs:
        return "structural-empty", data
    special = rng.random()
    if kind.structured != "jsonl" and special < 0.1:
        return "yaml-alias-fan", _alias_fan(rng)
    if special < 0.15:
        depth = rng.choice((50, 500, 5000))
        return "deep", (b"[" * depth + b"1" + b"]" * depth)
    i = rng.randrange(len(docs))
    name = rng.choice(sorted(FILE_STRUCTURAL))
    try:
        docs[i] = json.loads(FILE_STRUCTURAL[name](docs[i], rng))
    except (ValueError, TypeError, RecursionError):
        return name, data
    as_yaml = rng.random() < 0.5
    try:
        if kind.structured == "jsonl":
            return name, b"".join(_dump(d, as_yaml, flow=True) + b"\n" for d in docs)
        return name, b"---\n".join(_dump(d, as_yaml) for d in docs)
    except RecursionError:  # too deep for the writer: the bytes as they were
        return name, data


def _parse(kind: Kind, data: bytes) -> list[Any]:
    text = data.decode("utf-8")
    if kind.structured == "jsonl":
        return [yaml.load(line, Loader=LOADER) for line in text.splitlines() if line.strip()]
    return [d for d in yaml.load_all(text, Loader=LOADER) if d is not None]


def _dump(doc: Any, as_yaml: bool, flow: bool = False) -> bytes:
    if as_yaml:
        text = yaml.dump(doc, Dumper=DUMPER, default_flow_style=flow or None, width=10**9, allow_unicode=True)
        return text.strip().encode("utf-8", "surrogatepass")
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _alias_fan(rng: random.Random) -> bytes:
    """A YAML document whose aliases fan out: small to write, huge if anything expands it."""
    levels, width = rng.choice(((4, 10), (6, 10), (9, 9)))
    lines = ["a0: &a0 [x, y]"]
    for level in range(1, levels):
        refs = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"kind: List\napiVersion: v1\nitems: *a{levels - 1}")
    return "\n".join(lines).encode()


# -- the run --------------------------------------------------------------------------------


@dataclass
class FileReport:
    start: int = 0
    inputs: int = 0
    seconds: float = 0.0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    hangs: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs, "first_index": self.start, "next_index": self.start + self.inputs,
            "seconds": round(self.seconds, 1),
            "inputs_per_second": round(self.inputs / self.seconds, 1) if self.seconds else 0,
            "outcomes": dict(sorted(self.outcomes.items())),
            "crashes": sum(1 for f in self.failures if f["problem"].startswith("crash")),
            "hangs": self.hangs, "failures": len(self.failures),
            "failure_kinds": dict(collections.Counter(_failure_kind(f) for f in self.failures).most_common()),
            "first_failures": _first_of_each(self.failures),
        }


def _failure_kind(failure: dict[str, Any]) -> str:
    """'manifests: crash RecursionError at FILE:LINE', 'kubeconfig: error quotes a secret', ..."""
    problem = str(failure["problem"])
    if problem.startswith("crash: "):
        error = problem.split(":", 2)[1].strip()
        where = f" at {problem.rsplit(' at ', 1)[1]}" if " at " in problem else ""
        return f"{failure.get('kind')}: crash {error}{where}"
    return f"{failure.get('kind')}: {problem.split(':')[0]}"


def _first_of_each(failures: list[dict[str, Any]], each: int = 3) -> list[dict[str, Any]]:
    """The first few failures of every kind, the rarest kinds first, so one loud kind does not
    hide the others."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for failure in failures:
        by_kind.setdefault(_failure_kind(failure), []).append(failure)
    rarest = sorted(by_kind.values(), key=len)
    return [failure for group in rarest for failure in group[:each]][:100]


def make_input(seed: int, index: int, table: dict[str, Kind], chosen: list[str]) -> tuple[Kind, str, bytes]:
    rng = random.Random(f"{seed}:{index}")
    kind = table[rng.choice(chosen)]
    name, data = mutate_file(kind, rng)
    return kind, name, data


def quotes_secret(message: str) -> bool:
    return SECRET in message or base64.b64encode(SECRET.encode()).decode() in message


def try_load(kind: Kind, path: Path) -> tuple[str, str | None]:
    """(outcome, problem): the loader's answer to the file at `path`."""
    try:
        kind.load(path)
    except kind.errors as exc:
        message = str(exc)
        if kind.names_file and str(path) not in message:
            return "refused", f"error does not name the file: {message[:300]}"
        if quotes_secret(message):
            return "refused", f"error quotes a secret: {message[:300]}"
        return "refused", None
    except RecursionError:
        return "crash", "crash: RecursionError"
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return "crash", f"crash: {type(exc).__name__}: {str(exc)[:200]} at {frame.filename}:{frame.lineno}"
    return "loaded", None


class Logged(logging.Handler):
    """What the loaders log while one file loads (their warnings name lines; none may quote a secret)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def installed(self) -> Iterator[Logged]:
        logger = logging.getLogger("gatekeeper")
        saved = (logger.level, logger.propagate)
        logger.addHandler(self)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # thousands of expected warnings: collected, not printed
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


class Clock:
    """Marks the input in progress; a watchdog thread ends the run if one passes the timeout."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.current: tuple[int, float] | None = None
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            current = self.current
            if current and time.monotonic() - current[1] > TIMEOUT:
                print(f"HANG: seed {self.seed} input {current[0]} still loading after {TIMEOUT:.0f} s",
                      file=sys.stderr, flush=True)
                os._exit(3)


def fuzz_files(directory: Path, seed: int, start: int, count: int, chosen: list[str] | None = None,
               quiet: bool = True) -> FileReport:
    table = kinds(directory)
    names = chosen or sorted(table)
    report = FileReport(start=start)
    clock = Clock(seed)
    started = time.monotonic()
    with Logged().installed() as logged:
        for index in range(start, start + count):
            _one_file(report, clock, logged, directory, seed, index, table, names)
            if not quiet and report.inputs % 5000 == 0:
                rate = report.inputs / (time.monotonic() - started)
                print(f"seed {seed}: {report.inputs} files from {start} ({rate:.0f}/s), failures "
                      f"{len(report.failures)}", file=sys.stderr, flush=True)
    report.seconds = time.monotonic() - started
    return report


def _one_file(report: FileReport, clock: Clock, logged: Logged, directory: Path, seed: int, index: int,
              table: dict[str, Kind], names: list[str]) -> None:
    kind, name, data = make_input(seed, index, table, names)
    path = directory / "inputs" / kind.file_name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    logged.messages.clear()
    clock.current = (index, time.monotonic())
    outcome, problem = try_load(kind, path)
    clock.current = None
    leaked = next((m for m in logged.messages if quotes_secret(m)), None)
    if leaked is not None:
        problem = problem or f"log quotes a secret: {leaked[:300]}"
    report.inputs += 1
    report.outcomes[f"{kind.name} {outcome}"] += 1
    if problem:
        report.failures.append({"index": index, "kind": kind.name, "mutation": name, "problem": problem,
                                "head": data[:200].decode("latin-1")})


# -- through a real server's reload -----------------------------------------------------------

RELOADABLE = {"policy": "authorization policy", "token": "token file", "basic": "basic-auth file",
              "manifests": "state manifests"}


def fuzz_reload(directory: Path, seed: int, start: int, count: int) -> FileReport:
    from tests.support.server import running_server

    table = kinds(directory / "kinds")
    args = inputs.server_args(directory)
    good = {"policy": directory / "policy.jsonl", "token": directory / "tokens.csv",
            "basic": directory / "basic.csv", "manifests": directory / "state.json"}
    report = FileReport(start=start)
    started = time.monotonic()
    with running_server(directory, args) as server, server.client() as client:
        checks = client.get("/readyz").json()["checks"]
        names = {kind: next(n for n in checks if n.startswith(label)) for kind, label in RELOADABLE.items()}
        originals = {kind: path.read_bytes() for kind, path in good.items()}
        for index in range(start, start + count):
            rng = random.Random(f"{seed}:{index}")
            kind = rng.choice(sorted(RELOADABLE))
            name, data = mutate_file(table[kind], rng)
            outcome, problem = _reload_one(server, client, good[kind], names[kind], data, originals[kind])
            report.inputs += 1
            report.outcomes[f"{kind} {outcome}"] += 1
            if problem:
                report.failures.append({"index": index, "kind": kind, "mutation": name, "problem": problem,
                                        "head": data[:200].decode("latin-1")})
        from tests.fuzz.http import server_problems

        report.failures += [{"problem": f"server log: {p}"} for p in server_problems(server)]
    report.seconds = time.monotonic() - started
    return report


def _reload_one(server: Any, client: Any, path: Path, check_name: str, data: bytes, original: bytes
                ) -> tuple[str, str | None]:
    before = _status(client, check_name)
    _apply(server, path, data)
    after = _wait(client, check_name, lambda now: (now["failures"], now["reloads"]) != (
        before["failures"], before["reloads"]))
    if after is None:
        return "unseen", "no reload seen within 10 s of SIGHUP"
    if isinstance(after, str):
        return "error", after
    outcome = "refused" if after["failures"] != before["failures"] else "loaded"
    problem = None
    if outcome == "refused":
        error = str(after.get("lastError", ""))
        if after.get("ok") or str(path.name) not in error:
            problem = f"/readyz does not name the refused file: {after}"
        elif quotes_secret(error):
            problem = f"/readyz quotes a secret: {error[:300]}"
        else:
            problem = _probe(client)
    _apply(server, path, original)
    # The poller may reload the mutated file once more before the good one: wait until the good
    # version answers, so the next input starts from it.
    restored = _wait(client, check_name, lambda now: bool(now["ok"]) and now["reloads"] > after["reloads"]
                     and _probe(client) is None)
    if not isinstance(restored, dict):
        problem = problem or f"the good file did not load back: {restored or _status(client, check_name)}"
    return outcome, problem


def _apply(server: Any, path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    os.kill(server.process.pid, signal.SIGHUP)


def _status(client: Any, check_name: str) -> dict[str, Any]:
    return dict(client.get("/readyz").json()["checks"][check_name])


def _wait(
    client: Any, check_name: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | str | None:
    """The file's /readyz entry once `done` holds (None after 10 s; a str if /readyz failed)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = client.get("/readyz")
        if response.status_code >= 500:
            return f"/readyz answered {response.status_code}: {response.text[:300]}"
        now: dict[str, Any] = response.json()["checks"][check_name]
        if done(now):
            return now
        time.sleep(0.02)
    return None


def _probe(client: Any) -> str | None:
    """The last good policy and token file still answer as they did."""
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "alice",
                    "resourceAttributes": {"namespace": "a", "verb": "get", "resource": "pods"}}}
    answer = client.post("/authorize", json=sar)
    if answer.status_code != 200 or not answer.json().get("status", {}).get("allowed"):
        return f"the last good policy is not in force: {answer.status_code} {answer.text[:200]}"
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": "tok-fuzz-alice"}}
    answer = client.post("/authenticate", json=review)
    if answer.status_code != 200 or not answer.json().get("status", {}).get("authenticated"):
        return f"the last good token file is not in force: {answer.status_code} {answer.text[:200]}"
    return None


def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gatekeeper-files-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--start", type=int, default=0, help="first input number (resume a run)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default="", help="comma-separated kinds (default: all)")
    parser.add_argument("--reload", type=int, metavar="N", help="N inputs through a real server's reload")
    parser.add_argument("--replay", type=int, help="load only input number N and show the outcome")
    args = parser.parse_args(argv)
    chosen = [k for k in args.kinds.split(",") if k] or None
    for directory in _workdir():
        if args.replay is not None:
            table = kinds(directory)
            kind, name, data = make_input(args.seed, args.replay, table, chosen or sorted(table))
            path = directory / "inputs" / kind.file_name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            print(f"input {args.replay}: {kind.name} [{name}], {len(data)} bytes")
            print(data[:3000].decode("latin-1"))
            print(try_load(kind, path))
            return 0
        if args.reload is not None:
            report = fuzz_reload(directory, args.seed, args.start, args.reload)
        else:
            report = fuzz_files(directory, args.seed, args.start, args.count, chosen, quiet=False)
    print(json.dumps(report.summary(), indent=1))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
