"""Finding 7: a file that is still being written is not loaded; SIGHUP loads at once.

A writer rewrites the policy in place and pauses half way, for longer than the reload interval
(0.2 s) but shorter than the settle time: the half written policy is valid (it only lacks alice's
rule), so loading it would silently deny alice. The old policy must answer throughout the pause,
and the whole new one once the write is done.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.support.server import Server, running_server
from tests.support.waiting import wait_for

CALLER = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)
ALICE = '{"user":"alice","namespace":"*","resource":"pods"}\n'
OLD = CALLER + ALICE  # alice's rule on line 2
NEW = CALLER + "# padding\n" * 8 + ALICE  # alice's rule on line 10
SAR = {
    "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
    "spec": {"user": "alice", "resourceAttributes": {"namespace": "team", "verb": "get", "resource": "pods"}},
}
PAUSE = 1.5  # seven reload intervals
SETTLE = 4.0


def alice_line(client: httpx.Client) -> int | None:
    """The policy line that allows alice, or None if nothing does."""
    response = client.post("/authorize", json=SAR)
    assert response.status_code == 200, response.text
    status = response.json()["status"]
    return int(status["reason"].rsplit(":", 1)[1]) if status["allowed"] else None


def start(tmp_path: Path, settle: float) -> tuple[Path, list[str]]:
    policy = tmp_path / "abac.jsonl"
    policy.write_text(OLD)
    return policy, ["--authorization-policy-file", str(policy), "--reload-settle", str(settle)]


def test_a_writer_that_pauses_half_way_is_not_loaded_until_it_is_done(tmp_path: Path) -> None:
    policy, args = start(tmp_path, SETTLE)
    with running_server(tmp_path, args) as server, server.client() as client:
        assert alice_line(client) == 2
        half = NEW.encode()[: NEW.index(ALICE)]  # every line but alice's: a valid policy
        with open(policy, "r+b") as f:
            f.truncate(0)
            f.write(half)
            f.flush()
            seen, paused_until = set(), time.monotonic() + PAUSE
            while time.monotonic() < paused_until:
                seen.add(alice_line(client))
                time.sleep(0.05)
            f.write(NEW.encode()[len(half):])
        assert seen == {2}, f"the half written policy answered: {seen}"
        assert wait_for(lambda: alice_line(client) == 10, timeout=SETTLE + 10)
        assert _policy_check(server)["reloads"] == 1  # the half written version never loaded


def test_sighup_loads_at_once_whatever_the_settle_time(tmp_path: Path) -> None:
    policy, args = start(tmp_path, 600.0)
    with running_server(tmp_path, args) as server, server.client() as client:
        assert alice_line(client) == 2
        with open(policy, "r+b") as f:  # in place, as an editor saves
            f.truncate(0)
            f.write(NEW.encode())
        time.sleep(1.0)  # five polls: none loads it within the settle time
        assert alice_line(client) == 2
        os.kill(server.process.pid, signal.SIGHUP)
        assert wait_for(lambda: alice_line(client) == 10, timeout=10)


def _policy_check(server: Server) -> dict[str, int]:
    with server.client() as client:
        check: dict[str, int] = client.get("/readyz").json()["checks"]["authorization policy"]
    return check
