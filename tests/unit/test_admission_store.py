"""The admission store: SQLite on real files (restarts, atomic writes), URLs, state manifests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from gatekeeper.admission.state import StoreError
from gatekeeper.backends.factory import StoreURLError, open_store
from gatekeeper.backends.manifests import ManifestError, ManifestSync, load_manifests
from gatekeeper.backends.memory import MemoryStore
from gatekeeper.backends.sqlite.store import SQLiteStore
from tests.support.admission import namespace, service_account


def test_sqlite_keeps_objects_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.db"
    store = SQLiteStore(path)
    store.put(namespace("team"))
    store.put(service_account("robot"))
    store.delete("namespaces", "", "absent")
    store.close()
    reopened = open_store(f"sqlite:///{path}")
    try:
        assert reopened.get("namespaces", "", "team") == namespace("team")
        assert [sa["metadata"]["name"] for sa in reopened.list("serviceaccounts", "team")] == ["robot"]
        assert (path.parent / "state.db-wal").exists() or path.exists()
    finally:
        reopened.close()


def test_sqlite_replace_all_is_all_or_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.put(namespace("keep"))
    with pytest.raises(ValueError, match=r"metadata\.name"):
        store.replace_all([namespace("new"), {"kind": "Namespace", "metadata": {}}])
    assert store.all() == [namespace("keep")]
    store.apply_manifests([namespace("b")], [("namespaces", "", "keep")], {("namespaces", "", "b"): "d"})
    assert store.all() == [namespace("b")]
    assert store.applied_manifests() == {("namespaces", "", "b"): "d"}
    store.close()


def test_two_connections_see_each_others_writes(tmp_path: Path) -> None:
    first, second = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    first.put(namespace("team"))
    assert second.get("namespaces", "", "team") == namespace("team")
    first.close()
    second.close()



WRITES = {
    "put": lambda store: store.put(namespace("team", phase="Terminating")),
    "delete": lambda store: store.delete("namespaces", "", "team"),
    "replace_all": lambda store: store.replace_all([]),
    "apply_manifests": lambda store: store.apply_manifests([], [("namespaces", "", "team")], {}),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_snapshot_sees_what_another_process_wrote_since_the_last_one(tmp_path: Path, write: str) -> None:
    """Each worker process has its own connection; a second SQLiteStore on the file is one."""
    ours, theirs = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    theirs.put(namespace("team"))
    assert ours.snapshot().get("namespaces", "", "team") == namespace("team")  # now cached
    WRITES[write](theirs)
    assert ours.snapshot().get("namespaces", "", "team") == theirs.get("namespaces", "", "team")
    ours.close()
    theirs.close()


def test_a_snapshot_reads_its_own_writes_and_hands_out_fresh_objects(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    snapshot = store.snapshot()
    assert snapshot.get("namespaces", "", "team") is None
    assert snapshot.list("namespaces", "") == []
    snapshot.put(namespace("team"))
    assert snapshot.get("namespaces", "", "team") == namespace("team")
    assert snapshot.list("namespaces", "") == [namespace("team")]
    snapshot.get("namespaces", "", "team")["status"]["phase"] = "Terminating"  # type: ignore[index]
    snapshot.list("namespaces", "")[0]["status"]["phase"] = "Terminating"
    assert snapshot.get("namespaces", "", "team") == namespace("team")
    assert store.snapshot().list("namespaces", "") == [namespace("team")]
    store.close()


def test_a_version_1_store_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE objects (resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,"
        " body BLOB NOT NULL, PRIMARY KEY (resource, namespace, name));"
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);"
    )
    db.execute("INSERT INTO objects VALUES ('namespaces', '', 'team', ?)", (orjson.dumps(namespace("team")),))
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert store.snapshot().get("namespaces", "", "team") == namespace("team")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
        db.execute("DELETE FROM objects")  # outside gatekeeper: an operator, an older binary
    assert store.snapshot().get("namespaces", "", "team") is None
    store.close()


def test_a_store_file_from_a_newer_gatekeeper_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 3")
    with pytest.raises(StoreError, match="schema version 3, this gatekeeper understands 2"):
        SQLiteStore(path)

@pytest.mark.parametrize("url", ["postgres://x", "sqlite:///", "sqlite://relative.db", "file.db"])
def test_bad_store_urls_say_what_is_expected(url: str) -> None:
    with pytest.raises(StoreURLError, match="expected memory:// or sqlite:///PATH"):
        open_store(url)


def test_manifests_read_folders_multi_document_yaml_json_and_lists(tmp_path: Path) -> None:
    (tmp_path / "ns.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\nstatus: {phase: Terminating}\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list.json").write_text(
        '{"kind": "List", "items": [{"apiVersion": "v1", "kind": "ServiceAccount",'
        ' "metadata": {"name": "default", "namespace": "a"}}]}'
    )
    (tmp_path / "notes.txt").write_text("ignored")
    names = [obj["metadata"]["name"] for obj in load_manifests([tmp_path])]
    assert names == ["a", "b", "default"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Namespace\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: p}\n",
         "document 1: kind: expected one of LimitRange, Namespace, ResourceQuota, Secret, ServiceAccount"),
        ("kind: Namespace\nmetadata: {name: a}\nstatus: {phase: Gone}\n",
         "document 0: status.phase: expected one of Active, Terminating, got 'Gone'"),
        ("kind: ServiceAccount\nmetadata: {name: a}\n", "document 0: metadata.namespace: a ServiceAccount"),
        ("kind: List\nitems:\n- kind: LimitRange\n  metadata: {name: l, namespace: n}\n"
         "  spec: {limits: [{}]}\n",
         "document 0, items[0]: spec.limits[0].type: expected a string"),
        ("kind: ResourceQuota\nmetadata: {name: q, namespace: n}\nspec: {hard: [1]}\n",
         "document 0: spec.hard: expected an object, got list"),
        ("kind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: a}\n",
         "document 1: Namespace a is already defined at"),
        ("kind: [", "not valid YAML or JSON"),
        ("- 1\n", "document 0: expected an object, got list"),
    ],
)
def test_a_bad_manifest_names_file_document_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_missing_manifest_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file or folder"):
        load_manifests([tmp_path / "absent.yaml"])


def test_manifest_sync_removes_what_the_manifests_dropped_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text("kind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: b}\n")
    store = MemoryStore()
    sync = ManifestSync(store, [path])
    assert sync.load() == 2
    store.put(namespace("learned"))  # from the admission stream
    path.write_text("kind: Namespace\nmetadata: {name: a}\n")
    sync.load()
    assert [o["metadata"]["name"] for o in store.all()] == ["a", "learned"]
    path.write_text("kind: Pod\n")
    with pytest.raises(ManifestError):
        sync.load()
    assert [o["metadata"]["name"] for o in store.all()] == ["a", "learned"]


def test_unchanged_manifests_do_not_undo_the_stream_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text("kind: Namespace\nmetadata: {name: a}\nstatus: {phase: Active}\n")
    store = SQLiteStore(tmp_path / "s.db")
    ManifestSync(store, [path]).load()
    store.put(namespace("a", "Terminating"))  # the admission stream saw a DELETE
    store.close()
    restarted = SQLiteStore(tmp_path / "s.db")
    ManifestSync(restarted, [path]).load()
    assert restarted.get("namespaces", "", "a") == namespace("a", "Terminating")
    path.write_text("kind: Namespace\nmetadata: {name: a}\nstatus: {phase: Active}\nspec: {}\n")
    ManifestSync(restarted, [path]).load()  # a changed manifest is applied again
    assert restarted.get("namespaces", "", "a") == {
        "kind": "Namespace", "metadata": {"name": "a"}, "status": {"phase": "Active"}, "spec": {}
    }
    restarted.close()
