"""The code's own contracts, checked by the suite so CI holds them: the import contracts in
pyproject.toml ([tool.importlinter]: layers run one way, no cycles), ruff, mypy --strict, and
DESIGN.md's Layout as the map of the tree (every package folder named, no module it names missing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_import_contracts_are_kept() -> None:
    result = _run(sys.executable, "-c", LINT_IMPORTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_ruff_finds_nothing() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "gatekeeper", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = _run(sys.executable, "-m", "mypy", "gatekeeper")  # strict = true in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def _layout() -> str:
    design = (ROOT / "DESIGN.md").read_text()
    return design[design.index("## Layout") :].split("```")[1]


def test_design_names_every_package_folder() -> None:
    layout = _layout()
    folders = sorted(
        p.parent.relative_to(ROOT / "gatekeeper").as_posix()
        for p in (ROOT / "gatekeeper").rglob("__init__.py")
        if p.parent != ROOT / "gatekeeper"
    )
    unnamed = [f for f in folders if not re.search(rf"(^|\s|/){re.escape(f.split('/')[-1])}/", layout)]
    assert not unnamed, f"DESIGN.md's Layout does not name {unnamed}"


def test_every_module_design_names_exists() -> None:
    """A `name.py` the Layout mentions is a file somewhere under gatekeeper/ (or the repo's tests/)."""
    existing = {p.name for folder in ("gatekeeper", "tests") for p in (ROOT / folder).rglob("*.py")}
    named = set(re.findall(r"\b([a-z_][a-z0-9_]*\.py)\b", _layout()))
    missing = sorted(named - existing)
    assert not missing, f"DESIGN.md's Layout names modules that do not exist: {missing}"
