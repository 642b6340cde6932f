"""The admission store: SQLite on real files (restarts, atomic writes), URLs, state manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.store.factory import StoreURLError, open_store
from gatekeeper.store.manifests import ManifestError, ManifestSync, load_manifests
from gatekeeper.store.memory import MemoryStore
from gatekeeper.store.sqlite import SQLiteStore
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
