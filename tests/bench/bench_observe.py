"""What observation adds to a request, measured in-process: `python -m tests.bench.bench_observe`.

- `metrics.record`: one request counted and timed (the labelled children are cached);
- the handlers' call (`observe.authorization`), with the audit log off and on (on: the entry is
  built, serialized and queued; the writer thread's share of the GIL is in the figure too);
- the `Observe` middleware around an ASGI app that answers at once, against the bare app.

No assertion on time: the numbers are printed, in microseconds per call.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from gatekeeper.authn.user import UserInfo
from gatekeeper.authz.attributes import Attributes, Decision
from gatekeeper.server import metrics, observe
from gatekeeper.server.audit import AuditLog

ATTRIBUTES = Attributes(user="alice", groups=("dev",), verb="get", resource_request=True,
                        namespace="team-a", resource="pods")
DECISION = Decision(True, "policies/abac.jsonl:12")
CALLER = UserInfo("kube-apiserver", groups=("system:authenticated",))


def per_call(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def handler_call(audit: AuditLog | None) -> Callable[[], None]:
    app = SimpleNamespace(state=SimpleNamespace(audit=audit))

    def call() -> None:
        scope = {"type": "http", "path": "/authorize", "app": app, "headers": [], "state": {"caller": CALLER}}
        observe.authorization(Request(scope), ATTRIBUTES, DECISION)

    return call


async def _answer(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _send(_message: Any) -> None:
    return None


def asgi_per_call(app: Any, calls: int) -> float:
    async def run() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await app({"type": "http", "path": "/authorize"}, _receive, _send)
        return (time.perf_counter() - started) / calls * 1e6

    return asyncio.run(run())


def run(calls: int = 100_000) -> list[str]:
    record = per_call(lambda: metrics.record("/x", "y", 0.001), calls)
    rows = [f"metrics.record                      {record:6.2f} us"]
    rows.append(f"observe.authorization, audit off    {per_call(handler_call(None), calls):6.2f} us")
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog(Path(tmp) / "audit.log", 0, 0)
        rows.append(f"observe.authorization, audit on     {per_call(handler_call(audit), calls):6.2f} us")
        audit.close()
    bare, wrapped = asgi_per_call(_answer, calls), asgi_per_call(observe.Observe(_answer), calls)
    rows.append(f"ASGI request, bare / through Observe {bare:6.2f} / {wrapped:.2f} us")
    return rows


if __name__ == "__main__":
    print("\n".join(run()))
