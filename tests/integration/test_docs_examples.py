"""Every ```console block of README.md and docs/*.md is run, and its output is the real output.

The convention (docs/index.md, "Examples"): a ```console block runs with a copy of examples/ as its
working directory; each `$ ` line is a command (a line ending in `\\` continues it), and the lines
up to the next `$ ` are its output, stdout and stderr together, compared exactly. Blocks that need
a running server or a cluster (curl, kubectl, `gatekeeper serve &`) are ```sh or ```text instead and
are not run here. The commands of one block share a shell, so `echo $?` sees the exit status of
the command before it. One normalisation only: the five random characters Kubernetes puts in a
projected token volume's name (`kube-api-access-lt292`) are not compared.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
HELPERS = {"gatekeeper", "echo", "printf", "ls", "head", "cat", "sed"}
BLOCK = re.compile(r"^```console\n(.*?)^```$", re.S | re.M)
RANDOM = re.compile(r"kube-api-access-[a-z0-9]{5}\b")
MARK = "\x1egatekeeper-docs-example-end\x1e"


@dataclass(frozen=True)
class Step:
    command: str
    shown: str


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    steps: tuple[Step, ...]


def _steps(body: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    lines = body.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        assert lines[i].startswith("$ "), f"output before the first command: {lines[i]!r}"
        command = lines[i][2:].rstrip("\n")
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        shown: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        steps.append(Step(command, "".join(shown)))
    return tuple(steps)


def _examples() -> list[Example]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(Example(str(page.relative_to(REPO)), line, _steps(m.group(1))))
    return found


EXAMPLES = _examples()


def normalise(output: str) -> str:
    return RANDOM.sub("kube-api-access-?????", output)


def _script(steps: tuple[Step, ...]) -> str:
    gatekeeper = f"gatekeeper() {{ {shlex.quote(sys.executable)} -m gatekeeper.cli \"$@\"; }}\n"
    body = "".join(f"{s.command}\n__rc=$?; printf '%s' {shlex.quote(MARK)}; (exit $__rc)\n" for s in steps)
    return gatekeeper + body


def test_the_docs_have_runnable_examples() -> None:
    pages = {e.page for e in EXAMPLES}
    assert "README.md" in pages
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.page}:{e.line}" for e in EXAMPLES])
def test_the_example_prints_what_the_docs_show(example: Example, tmp_path: Path) -> None:
    for step in example.steps:
        program = step.command.split()[0]
        assert program in HELPERS, f"{example.page}:{example.line}: {program} is not run offline: use ```sh"
        assert not step.command.rstrip().endswith("&"), "a server example: use ```sh or ```text"
    assert any(re.search(r"(^|\|\s*)gatekeeper ", s.command) for s in example.steps)
    workdir = tmp_path / "examples"
    shutil.copytree(REPO / "examples", workdir)
    done = subprocess.run(
        ["bash", "-c", _script(example.steps)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**_env(), "PYTHONUNBUFFERED": "1"},
        timeout=120,
    )
    outputs = done.stdout.split(MARK)[: len(example.steps)]
    assert len(outputs) == len(example.steps), done.stdout
    for step, real in zip(example.steps, outputs, strict=True):
        assert normalise(real) == normalise(step.shown), f"{example.page}:{example.line}: $ {step.command}"


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}


@pytest.mark.parametrize("folder", ["examples", "policies"])
def test_the_shipped_folders_lint_clean(folder: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "lint", folder],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " error: " not in done.stdout


@pytest.mark.parametrize("name", ["abac.jsonl", "tokens.csv"])
def test_the_example_files_are_the_shipped_ones(name: str) -> None:
    assert (REPO / "examples" / name).read_bytes() == (REPO / "policies" / name).read_bytes()


def test_the_documented_kube_apiserver_flags_are_the_ones_webhook_config_writes(tmp_path: Path) -> None:
    def gatekeeper(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "gatekeeper.cli", *args], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    gatekeeper("certs", "init", "--dir", "certs", "--host", "gatekeeper.example.com")
    gatekeeper(
        "webhook-config", "--url", "https://gatekeeper.example.com:8443", "--cert-dir", "certs",
        "--out-dir", "out", "--config-dir", "/etc/kubernetes/gatekeeper",
    )
    page = (REPO / "docs" / "real-cluster.md").read_text()
    shown = page.split("kube-apiserver ... \\\n", 1)[1].split("```", 1)[0]
    flags = [line.strip().rstrip("\\").strip() for line in shown.splitlines() if line.strip()]
    assert flags == (tmp_path / "out" / "kube-apiserver-flags.txt").read_text().split()
    legacy = (tmp_path / "out" / "kube-apiserver-flags-legacy.txt").read_text().split()
    mode = next(flag for flag in legacy if flag.startswith("--authorization-mode="))
    assert f"`{mode}`" in page
