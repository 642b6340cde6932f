"""Prometheus metrics: request counts and latency per endpoint and decision, reloads, quota usage.

Request metrics are counted where they happen. With `--workers N` each worker process writes
them to prometheus-client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR, made by `serve`),
and a scrape of any worker sums all workers. Reload and policy metrics describe the worker that
answers the scrape (every worker watches the same files); quota usage comes from the shared store.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gatekeeper.admission.quota_usage import with_usage
from gatekeeper.k8s.quantity import QuantityError, parse_quantity

log = logging.getLogger("gatekeeper.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the scrape, say nothing

# Not in the default registry: each scrape builds its own (multiprocess mode needs that anyway).
REQUESTS = Counter(
    "gatekeeper_requests", "Requests answered, per endpoint and decision.", ["endpoint", "decision"],
    registry=None,
)
LATENCY = Histogram(
    "gatekeeper_request_duration_seconds",
    "Time from request to response headers, per endpoint and decision.",
    ["endpoint", "decision"], buckets=LATENCY_BUCKETS, registry=None,
)

# Apart from the request's own latency: how long each quota charge queued for the ledger's write
# lock (SQLite: the flock and SQLite's lock; etcd and a live cluster: the namespace's write in flight).
QUOTA_LOCK_WAIT = Histogram(
    "gatekeeper_quota_lock_wait_seconds",
    "Time each quota charge waited for its turn to write to the quota ledger, before holding it.",
    buckets=(0.00005, 0.0001, 0.00025, *LATENCY_BUCKETS), registry=None,
)

# Counted by every worker and summed like the request metrics; only with a shadow policy.
SHADOW = Counter(
    "gatekeeper_shadow_decisions",
    "SubjectAccessReviews decided under the shadow policy too, by how its decision compares with the "
    "answer given: agree, shadow_allows (the answer did not allow), shadow_denies (the answer allowed).",
    ["result"], registry=None,
)

_children: dict[tuple[str, str], tuple[Any, Any]] = {}
_shadow_children: dict[str, Any] = {}


def record(endpoint: str, decision: str, seconds: float) -> None:
    """Count one answered request (label children are cached: this is on every request's path)."""
    pair = _children.get((endpoint, decision))
    if pair is None:
        pair = _children[(endpoint, decision)] = (
            REQUESTS.labels(endpoint, decision), LATENCY.labels(endpoint, decision)
        )
    pair[0].inc()
    pair[1].observe(seconds)


def record_quota_lock_wait(seconds: float) -> None:
    QUOTA_LOCK_WAIT.observe(seconds)


def start_shadow_counts(results: Iterable[str]) -> None:
    """A shadow policy is configured: its counts exist, at 0, before the first review."""
    for result in results:
        record_shadow(result, 0)


def record_shadow(result: str, amount: int = 1) -> None:
    child = _shadow_children.get(result)
    if child is None:
        child = _shadow_children[result] = SHADOW.labels(result)
    child.inc(amount)


class _RequestMetrics(Collector):
    def collect(self) -> Iterable[Metric]:
        yield from REQUESTS.collect()
        yield from LATENCY.collect()
        yield from QUOTA_LOCK_WAIT.collect()
        if _shadow_children:  # no shadow policy, no shadow metrics
            yield from SHADOW.collect()


class RuntimeCollector(Collector):
    """Reloads per watched file, the policy in force, and quota usage; read at scrape time."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        yield from self._reloads()
        yield from self._policy()
        yield from self._quota()
        yield from self._watches()

    def _reloads(self) -> Iterator[Metric]:
        reloads = CounterMetricFamily(
            "gatekeeper_reloads", "File reloads since start, by result.", labels=["file", "result"]
        )
        healthy = GaugeMetricFamily(
            "gatekeeper_reload_healthy", "1 if the file's last load succeeded, 0 if it was refused.",
            labels=["file"],
        )
        for item in self.runtime.watched:
            status = item.status()
            reloads.add_metric([status.name, "success"], status.reloads)
            reloads.add_metric([status.name, "failure"], status.failures)
            healthy.add_metric([status.name], 0 if status.error else 1)
        yield reloads
        yield healthy

    def _policy(self) -> Iterator[Metric]:
        yield from _policy_families("gatekeeper_policy", "authorization policy in force", self.runtime.policy)
        if self.runtime.shadow is not None:
            yield from _policy_families("gatekeeper_shadow_policy", "shadow authorization policy",
                                        self.runtime.shadow)

    def _quota(self) -> Iterator[Metric]:
        labels = ["namespace", "resourcequota", "resource"]
        used = GaugeMetricFamily("gatekeeper_quota_used", "Quota usage as enforced now.", labels=labels)
        hard = GaugeMetricFamily("gatekeeper_quota_hard", "Quota limits as enforced now.", labels=labels)
        try:
            quotas = with_usage(self.runtime.admission.store)
        except Exception as exc:  # a store outage must not break the scrape of everything else
            log.warning("quota metrics unavailable: %s", exc)
            return
        for obj in quotas:
            metadata = obj.get("metadata") or {}
            key = [str(metadata.get("namespace") or ""), str(metadata.get("name") or "")]
            status = obj.get("status") or {}
            _add_quantities(used, key, status.get("used"))
            _add_quantities(hard, key, status.get("hard"))
        yield used
        yield hard


    def _watches(self) -> Iterator[Metric]:
        """The live cluster's watches (serve --kubeconfig), for the worker answering the scrape."""
        live = self.runtime.admission.watches()
        if live is None:
            return
        events = CounterMetricFamily(
            "gatekeeper_watch_events", "Watch events applied since start, per kind.", labels=["resource"]
        )
        relists = CounterMetricFamily(
            "gatekeeper_watch_relists", "Lists after the first (410 Gone, a broken watch), per kind.",
            labels=["resource"],
        )
        newest = GaugeMetricFamily(
            "gatekeeper_watch_last_event_age_seconds",
            "Seconds since the newest list, watch event or bookmark of the kind.", labels=["resource"],
        )
        synced = GaugeMetricFamily(
            "gatekeeper_watch_synced", "1 once the kind's first list is in, 0 before.", labels=["resource"]
        )
        now = time.time()
        for resource, watch in sorted(live.watches().items()):
            events.add_metric([resource], watch.events)
            relists.add_metric([resource], watch.relists)
            synced.add_metric([resource], 1 if watch.synced else 0)
            if watch.last_event_at:
                newest.add_metric([resource], now - watch.last_event_at)
        yield from (events, relists, newest, synced)


def _policy_families(prefix: str, what: str, watched: Any) -> Iterator[Metric]:
    """PREFIX_info{file,sha256} 1, PREFIX_rules, PREFIX_loaded_timestamp_seconds of a watched policy."""
    policy = watched.current.policy
    info = GaugeMetricFamily(f"{prefix}_info", f"The {what} (always 1).", labels=["file", "sha256"])
    info.add_metric([policy.name, policy.sha256], 1)
    rules = GaugeMetricFamily(f"{prefix}_rules", f"Rules in the {what}.")
    rules.add_metric([], len(policy.rules))
    loaded = GaugeMetricFamily(f"{prefix}_loaded_timestamp_seconds", f"When the {what} was loaded.")
    loaded.add_metric([], watched.loaded_at)
    yield from (info, rules, loaded)


def _add_quantities(family: GaugeMetricFamily, key: list[str], values: Any) -> None:
    if not isinstance(values, dict):
        return
    for resource, text in sorted(values.items()):
        try:
            family.add_metric([*key, str(resource)], float(parse_quantity(str(text)).as_fraction()))
        except QuantityError:
            continue


def scrape_registry(runtime: Any) -> CollectorRegistry:
    """What GET /metrics exposes for this process (all workers' request metrics in multiprocess mode)."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_RequestMetrics())
        ProcessCollector(registry=registry)
    registry.register(RuntimeCollector(runtime))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
