"""``meshgen rollout backtest``: replay an app's rollout policy over Prometheus history.

The shell of :mod:`generator.rollout.backtest`: it reads the app's effective ``rollout`` block
in one environment, applies the command line's overrides, sends one range query per query of
the policy's plan for the whole span (in pieces of at most :data:`MAX_POINTS` steps, below
Prometheus's limit of 11,000 points per series), and hands the results to the pure replay.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

from generator.bot import bot
from generator.bot.prometheus import Prometheus
from generator.errors import SpecError, SpecErrors, UsageError
from generator.rollout import backtest, metrics
from generator.rollout.backtest import Replay, Series
from generator.rollout.decision import Rollout
from generator.spec.config import EffectiveApp, Repo, load_repo
from generator import targets

#: Steps per range query; Prometheus refuses more than 11,000 points per series.
MAX_POINTS = 10_000


def range_results(client: Prometheus, queries: tuple[str, ...], start: datetime, end: datetime,
                  step: float) -> dict[str, list[Series]]:
    """Each query's range result from ``start`` to ``end`` every ``step`` seconds: one
    request per query, or one per :data:`MAX_POINTS` steps of a longer span.

    Raises:
        PrometheusError: as :meth:`generator.bot.prometheus.Prometheus.query_range`.
    """
    results: dict[str, list[Series]] = {}
    for promql in queries:
        merged: dict[tuple[tuple[str, str], ...], Series] = {}
        piece_start = start
        while piece_start <= end:
            piece_end = min(end, piece_start + timedelta(seconds=step * (MAX_POINTS - 1)))
            for one in client.query_range(promql, piece_start, piece_end, step):
                key = tuple(sorted(one.labels.items()))
                if key in merged:
                    merged[key].points.extend(one.points)
                else:
                    merged[key] = Series(one.labels, list(one.points))
            piece_start = piece_end + timedelta(seconds=step)
        results[promql] = list(merged.values())
    return results


def overridden(block: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The rollout block with the command line's overrides (``steps``, ``interval``,
    ``policy``, ``minRequests``, ``failureLimit``; ``None`` values are not given)."""
    new = dict(block)
    analysis = dict(new.get("analysis") or {})
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("minRequests", "failureLimit"):
            analysis[key] = value
        else:
            new[key] = value
    if analysis:
        new["analysis"] = analysis
    return new


def rollout_in(repo: Repo, app: str, env: str) -> tuple[EffectiveApp, Rollout] | None:
    """``app``'s effective document and rollout block in ``env``; ``None`` when it has none.

    Raises:
        UsageError: unknown app or environment.
        SpecErrors: the rollout block breaks the rollout rules.
    """
    items = bot._rollouts(repo, [env], [app])
    return (items[0].effective, items[0].rollout) if items else None


def run_backtest(root: Path, app: str, env: str, start: datetime, end: datetime, *,
                 overrides: Mapping[str, Any] | None = None, prometheus: str | None = None) -> Replay:
    """Replay ``app``'s rollout in ``env`` from ``start`` to ``end``.

    Args:
        root: the config repository.
        app, env: which rollout.
        start, end: the span, timezone-aware.
        overrides: see :func:`overridden`.
        prometheus: a Prometheus URL (default: ``$MESHGEN_PROMETHEUS_URL``, else the
            environment's ``spec.prometheus.url``).

    Raises:
        UsageError: unknown app or environment, an empty span, or an override the rollout
            rules refuse (steps not ending at 100, a bad interval).
        SpecErrors: the app has no rollout block in ``env``, or invalid specs.
        PrometheusError: Prometheus failed (exit 3).
    """
    repo = load_repo(Path(root))
    found = rollout_in(repo, app, env)
    if found is None:
        doc = repo.apps[app]
        raise SpecErrors([SpecError(f"app {app!r} has no rollout in environment {env!r}", place=doc.place("spec"),
                                    hint="add a `rollout` block to the app or to the environment's override")])
    effective = found[0]
    block = ((effective.data.get("spec") or {}).get("rollout")) or {}
    try:
        rollout = Rollout.from_spec(overridden(block, overrides or {}))
        times = backtest.ticks(start, end, rollout.interval)
    except ValueError as e:
        raise UsageError(str(e)) from e
    target = metrics.target_of(app, env, effective.data, rollout,
                               targets.of_environment(repo.environments[env].data.get("spec")).series_service,
                                   targets.of_environment(repo.environments[env].data.get("spec")).series_reporter)
    try:
        plan = metrics.plan(rollout, target)
    except ValueError as e:
        raise UsageError(f"rollout: {e}") from e
    results: dict[str, list[Series]] = {}
    if plan.queries:
        with Prometheus.from_environment(bot.prometheus_url(repo, env, prometheus), timeout=60.0) as client:
            results = range_results(client, plan.queries, times[0], times[-1], rollout.interval)
    return backtest.replay(rollout, target, plan, results, times, env)
