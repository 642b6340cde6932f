"""The docs build with `mkdocs build --strict` (no broken link or anchor between pages, no page left
out of the nav), and every link of README.md into docs/ names a page and a heading that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_the_docs_build_strict(site: Path) -> None:
    assert (site / "quota" / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text()
    for page in (REPO / "docs").glob("*.md"):
        assert f" {page.name}\n" in nav, f"{page.name} is not in mkdocs.yml's nav"


def test_the_readme_links_into_the_docs_resolve(site: Path) -> None:
    links = re.findall(r"\]\(docs/([a-z-]+)\.md(?:#([a-z0-9-]+))?\)", (REPO / "README.md").read_text())
    assert len(links) >= 10
    for page, anchor in links:
        html = site / ("" if page == "index" else page) / "index.html"
        assert html.is_file(), f"README links to docs/{page}.md, which does not exist"
        if anchor:
            assert f'id="{anchor}"' in html.read_text(), f"README: docs/{page}.md#{anchor}: no such heading"
