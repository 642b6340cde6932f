"""Watched's own interface for what the state manifests need: a file list made again on every
reload, and Retry for load failures that are not the files' fault (the store unreachable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.admission.state import StoreError
from gatekeeper.server.reload import Retry, Watched


def texts(folder: Path) -> list[Path]:
    return [folder, *sorted(folder.glob("*.txt"))]


def joined(folder: Path) -> str:
    return "".join(path.read_text() for path in texts(folder)[1:])


def test_a_file_added_to_a_watched_folder_is_watched_from_the_next_reload(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    watched = Watched("texts", lambda: texts(tmp_path), lambda: joined(tmp_path))
    assert (watched.current, watched.paths) == ("a", (tmp_path, tmp_path / "a.txt"))
    (tmp_path / "b.txt").write_text("b")
    assert watched.changed()  # the folder changed
    assert watched.reload()
    assert (watched.current, watched.paths) == ("ab", (tmp_path, tmp_path / "a.txt", tmp_path / "b.txt"))
    assert not watched.changed()
    (tmp_path / "b.txt").write_text("bb!")  # the new file itself, the folder unchanged
    assert watched.changed()
    assert watched.reload()
    assert watched.current == "abb!"


class Flaky:
    """A load into a store that is down until `up` is set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.up = False

    def __call__(self) -> int:
        if not self.up:
            raise StoreError("etcd is unavailable (127.0.0.1:1)")
        return len(self.path.read_text())


def test_a_load_the_store_refused_stands_in_at_start_and_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text("12345")
    load = Flaky(path)
    watched = Watched("state manifests", [path], load, Retry((StoreError,), 0))
    assert (watched.current, watched.failures, watched.reloads) == (0, 1, 0)
    assert watched.error == "etcd is unavailable (127.0.0.1:1)"
    assert watched.changed()  # the file is unchanged, but the load is to be tried again
    assert not watched.check()
    assert (watched.failures, watched.changed()) == (2, True)
    load.up = True
    assert watched.check()
    assert (watched.current, watched.error, watched.changed()) == (5, None, False)


def test_a_failure_that_is_the_files_fault_still_fails_start_up_and_is_not_retried(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"

    def parse() -> int:
        text = path.read_text()
        if text == "bad":
            raise ValueError(f"{path}: document 0: kind: expected one of Namespace, ...")
        return len(text)

    path.write_text("bad")
    with pytest.raises(ValueError, match="document 0"):
        Watched("state manifests", [path], parse, Retry((StoreError,), 0))
    path.write_text("good")
    watched = Watched("state manifests", [path], parse, Retry((StoreError,), 0))
    path.write_text("bad")
    assert not watched.reload()
    assert (watched.current, watched.failures) == (4, 1)
    assert not watched.changed()  # waits for the file to change again
