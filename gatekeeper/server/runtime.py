"""Everything the handlers need, built once at start-up and swapped whole on reload."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gatekeeper.authn.basicauth import BasicAuthFile, load_basic_auth_file
from gatekeeper.authn.hashing import HashPool
from gatekeeper.authn.tokenfile import TokenFile, load_token_file
from gatekeeper.authn.union import RequestAuthenticator
from gatekeeper.authn.x509 import X509Authenticator
from gatekeeper.authz.evaluator import Evaluator, load_evaluator, release_in_steps
from gatekeeper.authz.policy import gc_paused
from gatekeeper.config import Settings
from gatekeeper.server.admission_state import build_admission
from gatekeeper.server.reload import Watched

log = logging.getLogger("gatekeeper.server")

SHADOW_NAME = "shadow authorization policy"  # its name on /readyz and in the reload metrics


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reloading = threading.Lock()  # SIGHUP and the poller take turns
        # Their own thread, so that no other work queued in asyncio's default executor ever
        # holds a reload back; password checks have a bounded pool of their own (finding 3).
        self._reloader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatekeeper-reload")
        self.password_hashes = HashPool(settings.max_password_hashes_inflight)
        policy_file = settings.authorization_policy_file
        self.policy: Watched[Evaluator] = Watched(
            "authorization policy", [policy_file], lambda: load_frozen(policy_file), release=release_evaluator
        )
        self.watched: list[Watched[Any]] = [self.policy]
        shadow_file = settings.shadow_authorization_policy_file
        self.shadow = watch_shadow(shadow_file) if shadow_file is not None else None
        if self.shadow is not None:
            self.watched.append(self.shadow)
        self.admission = build_admission(settings)  # store, state manifests, plugin chain
        self.watched.extend(self.admission.watched)
        # Caller authentication (issue 3): the credential files reload like the policy.
        token_file, basic_file = settings.token_auth_file, settings.basic_auth_file
        self.tokens: Watched[TokenFile] | None = None
        self.basic_auth: Watched[BasicAuthFile] | None = None
        if token_file is not None:
            self.tokens = Watched("token file", [token_file], lambda: load_token_file(token_file))
            self.watched.append(self.tokens)
        if basic_file is not None:
            self.basic_auth = Watched(
                "basic-auth file", [basic_file], lambda: load_basic_auth_file(basic_file)
            )
            self.watched.append(self.basic_auth)
        # The client CA reloads too: the TLS layer picks a new one up for new handshakes (server/tls.py).
        ca_file = settings.client_ca_file
        self.x509: Watched[X509Authenticator] | None = None
        if ca_file is not None:
            self.x509 = Watched("client CA", [ca_file], lambda: X509Authenticator.from_file(ca_file))
            self.watched.append(self.x509)

    def authenticator(self) -> RequestAuthenticator:
        """The authentication methods in force now (the current version of each file)."""
        return RequestAuthenticator(
            x509=self.x509.current if self.x509 else None,
            tokens=self.tokens.current if self.tokens else None,
            basic=self.basic_auth.current if self.basic_auth else None,
            anonymous=self.settings.anonymous_auth,
        )

    def reload_all(self) -> None:
        with self._reloading:
            if any([item.reload() for item in self.watched]):
                freeze_long_lived()

    def poll(self) -> None:
        with self._reloading:
            if any([item.check(self.settings.reload_settle) for item in self.watched]):
                freeze_long_lived()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Future[None]] = set()

        def on_sighup() -> None:  # off the loop, like the poller: a large policy loads for a while
            task = asyncio.ensure_future(loop.run_in_executor(self._reloader, self.reload_all))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        task = asyncio.create_task(self._poll_forever())
        freeze_long_lived()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.password_hashes.shutdown()
            self._reloader.shutdown(wait=False, cancel_futures=True)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            try:
                await asyncio.get_running_loop().run_in_executor(self._reloader, self.poll)
            except Exception:  # the poller must survive anything a file system does
                log.exception("polling watched files failed")


def watch_shadow(path: Path) -> Watched[Evaluator]:
    """The shadow policy (issue 18): decided on every review, never answered. It reloads like the
    policy and its errors show on /readyz the same way, which never un-readies the server. At
    start-up a bad file is fatal, as the policy's is, and the error says which of the two it is."""
    try:
        return Watched(SHADOW_NAME, [path], lambda: load_frozen(path), release=release_evaluator)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--shadow-authorization-policy-file: {exc}") from None


def load_frozen(path: Path) -> Evaluator:
    """load_evaluator, its objects frozen before the collector is back on: the first automatic
    collection after it would otherwise walk all of them (~0.5 s for 1,000,000 rules), in this
    thread but with the GIL held, stopping every request. freeze_long_lived follows."""
    with gc_paused():
        evaluator = load_evaluator(path)
        gc.freeze()
    return evaluator


RELEASE_PAUSE = 0.0005  # seconds between the slices of a replaced policy's release


def release_evaluator(holder: list[Evaluator]) -> None:
    """A replaced policy, freed in slices on the reload thread, never in one long deallocation."""
    release_in_steps(holder, lambda: time.sleep(RELEASE_PAUSE))


def freeze_long_lived() -> None:
    """Hide everything alive now (the policy index, the credential files, the app) from the cyclic
    garbage collector. A 10,000-rule policy is a few hundred thousand objects; every full
    collection walked them all and stopped the worker for ~50 ms, several times a minute under
    admission load: the whole p99. Called at start-up and after each successful reload.

    A frozen object is never collected, so each call first thaws what the last one froze and
    collects: what was alive then but is garbage now (the replaced policy, the connections open
    at the last reload) goes, and nothing stays frozen longer than until the next reload."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
