"""Finding 1: no store keeps a Secret's values, and the SQLite files are the owner's alone.

A Secret whose data, stringData and last-applied annotation carry a unique marker goes into every
store by every path (serve --state, `gatekeeper state sync`, `gatekeeper admit --state-out`, etcd);
the stored bytes are then read raw and must hold the marker in neither plain nor base64 form,
while the ServiceAccount plugin still finds the token Secret by its type and annotations.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml

from gatekeeper.backends.manifests import ManifestSync
from gatekeeper.backends.memory import MemoryStore
from gatekeeper.backends.sqlite.store import SQLiteStore
from tests.support.admission import pod, review
from tests.support.etcd import etcd_store, shared_cluster
from tests.support.server import running_server

MARKER = f"S3CR3T-{uuid.uuid4().hex}"
MARKER_B64 = base64.b64encode(MARKER.encode()).decode()
CALLER_POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)
TOKEN_SECRET = "default-token-abcde"


def secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": TOKEN_SECRET,
            "namespace": "team",
            "labels": {"app": "web"},
            "annotations": {
                "kubernetes.io/service-account.name": "default",
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                    {"data": {"token": MARKER_B64}}
                ),
            },
        },
        "type": "kubernetes.io/service-account-token",
        "data": {"token": MARKER_B64},
        "stringData": {"password": MARKER},
    }


def state_objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"},
         "status": {"phase": "Active"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "team"},
         "secrets": [{"name": TOKEN_SECRET}]},
        secret(),
    ]


def write_state(path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(state_objects()))
    return path


def assert_no_marker(data: bytes, where: str) -> None:
    for encoding in (MARKER, MARKER_B64):
        assert encoding.encode() not in data, f"{where} holds the Secret's value ({encoding[:12]}...)"


def assert_store_files_clean(db: Path) -> None:
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    assert all(f.exists() for f in files), [f.name for f in db.parent.iterdir()]
    for file in files:
        assert_no_marker(file.read_bytes(), file.name)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name


def test_serve_keeps_no_secret_value_and_its_store_is_private(tmp_path: Path) -> None:
    state = write_state(tmp_path / "state.yaml")
    (tmp_path / "abac.jsonl").write_text(CALLER_POLICY)
    db = tmp_path / "var" / "store" / "gatekeeper.db"  # the folder does not exist yet
    args = ["--state", str(state), "--store", f"sqlite:///{db}", "--authorization-policy-file", "abac.jsonl",
            "--enable-admission-plugins", "ServiceAccount", "--service-account-token-volume", "secret"]
    with running_server(tmp_path, args) as server, server.client() as client:
        answer = client.post("/mutate", json=review(obj=pod()))
        assert answer.status_code == 200, answer.text
        patch = json.loads(base64.b64decode(answer.json()["response"]["patch"]))
        # the plugin still finds the token Secret by its type and service-account annotation
        assert TOKEN_SECRET in json.dumps(patch)
        assert_store_files_clean(db)
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert_no_marker(server.log().encode(), "the server log")


def test_state_sync_and_admit_state_out_keep_no_secret_value(tmp_path: Path) -> None:
    listed = tmp_path / "live.json"
    listed.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": state_objects()}))
    db = tmp_path / "synced.db"
    sync = [sys.executable, "-m", "gatekeeper.cli", "state", "sync", "--store", f"sqlite:///{db}",
            str(listed)]
    assert subprocess.run(sync, capture_output=True, timeout=60).returncode == 0
    with contextlib.closing(SQLiteStore(db)) as store:
        stored = store.get("secrets", "team", TOKEN_SECRET)
    assert stored is not None and stored["type"] == "kubernetes.io/service-account-token"
    assert list(stored["metadata"]["annotations"]) == ["kubernetes.io/service-account.name"]
    for file in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if file.exists():
            assert_no_marker(file.read_bytes(), file.name)
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name

    out = tmp_path / "after.json"
    reviews = tmp_path / "reviews.json"
    reviews.write_text(json.dumps(review(obj=pod())))
    state = write_state(tmp_path / "s.yaml")
    admit = [sys.executable, "-m", "gatekeeper.cli", "admit", "--state", str(state), "--state-out", str(out),
             str(reviews)]
    done = subprocess.run(admit, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert_no_marker(out.read_bytes() + done.stdout + done.stderr, "admit --state-out")


def test_a_store_written_by_an_older_version_is_scrubbed_and_made_private(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(
        "CREATE TABLE objects (resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,"
        " body BLOB NOT NULL, PRIMARY KEY (resource, namespace, name));"
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2);"
    )
    row = ("secrets", "team", TOKEN_SECRET, orjson.dumps(secret()))
    old.execute("INSERT INTO objects VALUES (?, ?, ?, ?)", row)
    old.commit()
    old.close()
    db.chmod(0o644)
    assert MARKER_B64.encode() in db.read_bytes()
    store = SQLiteStore(db)
    try:
        assert store.get("secrets", "team", TOKEN_SECRET) == {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": TOKEN_SECRET, "namespace": "team",
                         "annotations": {"kubernetes.io/service-account.name": "default"}},
        }
        assert_store_files_clean(db)
    finally:
        store.close()


def test_the_memory_store_keeps_no_secret_value() -> None:
    store = MemoryStore(state_objects())
    store.put(secret())
    assert_no_marker(orjson.dumps(store.all()), "the memory store")


def test_etcd_keeps_no_secret_value(tmp_path: Path) -> None:
    with etcd_store() as store:
        ManifestSync(store, [write_state(tmp_path / "state.yaml")]).load()
        store.put(secret())
        store.replace_all(state_objects())
        prefix = store.options.prefix.encode()
        member = shared_cluster().members[0]
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = {"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode()}
        kvs = member.post("/v3/kv/range", body).json()["kvs"]
    values = b"".join(base64.b64decode(kv["value"]) for kv in kvs)
    assert b"kubernetes.io/service-account-token" in values  # the Secret is there, its values are not
    assert_no_marker(values, "etcd")


def test_a_folder_others_can_write_is_warned_about(tmp_path: Path, caplog: Any) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # an emptyDir volume, say: kept, but the operator hears of it
    with caplog.at_level("WARNING", logger="gatekeeper.store"):
        SQLiteStore(shared / "g.db").close()
    assert f"SQLite store folder {shared} is writable by group or others (mode 777)" in caplog.text
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777
    assert stat.S_IMODE((shared / "g.db").stat().st_mode) == 0o600
