"""Backtest: what the bot would have done to a rollout over past metrics. Pure.

The replay asks the same questions of the same pure functions as the bot's tick -- the
queries of :func:`generator.rollout.metrics.plan`, the verdict of
:func:`~generator.rollout.metrics.evaluate`, the next status of
:func:`generator.rollout.decision.decide` -- at a tick every ``interval`` from the start of
the span, starting with no status (so the first tick starts the rollout). Only the source of
the samples differs: instead of one instant query per metric per tick, the shell
(:mod:`generator.bot.backtest`) sends one range query per metric for the whole span
(``/api/v1/query_range`` with ``step`` = ``interval``), and the instant vector of each tick is
that range result's samples at the tick's timestamp. Prometheus evaluates a range query as
independent instant queries at ``start + k * step``, so the values are those an instant
query at each tick would have returned
(https://prometheus.io/docs/prometheus/latest/querying/api/#range-queries).

The replay stops when the rollout succeeds or rolls back; a replay that reaches the end of
the span with the rollout still progressing says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping, NamedTuple, Sequence

from generator.rollout import metrics
from generator.rollout.decision import (
    ROLLED_BACK,
    SUCCEEDED,
    Action,
    Check,
    Rollout,
    check_due,
    decide,
    format_time,
)
from generator.rollout.metrics import Plan, Sample, Target, Vector


class Series(NamedTuple):
    """One series of a Prometheus range vector (``resultType: matrix``).

    Attributes:
        labels: the series' labels.
        points: ``(unix seconds, value)`` pairs in time order; NaN and infinities as sent.
    """

    labels: dict[str, str]
    points: list[tuple[float, float]]


def ticks(start: datetime, end: datetime, interval: float) -> list[datetime]:
    """The replay's ticks: ``start``, ``start + interval``, ... up to and including ``end``.

    Raises:
        ValueError: ``end`` is not after ``start``, or ``interval`` is not positive.
    """
    if interval <= 0:
        raise ValueError("the interval must be longer than zero")
    if end <= start:
        raise ValueError(f"the span {format_time(start)} .. {format_time(end)} is empty: --to must be after --from")
    count = int((end - start).total_seconds() // interval) + 1
    return [start + timedelta(seconds=k * interval) for k in range(count)]


@dataclass
class Tick:
    """One tick of the replay that did something (``NOTHING`` ticks are left out).

    Attributes:
        time: the tick, UTC.
        action: what the bot would have done.
        weight_before, weight: the canary's weight in percent before and after.
        reason: why, in the bot's words.
        check: the analysis at this tick, if one was due.
    """

    time: datetime
    action: Action
    weight_before: int
    weight: int
    reason: str
    check: Check | None = None

    def to_json(self) -> dict[str, Any]:
        check = None
        if self.check is not None:
            check = {"verdict": self.check.verdict.value, "reason": self.check.reason,
                     "metrics": dict(self.check.metrics)}
            if self.check.dry_run:
                check["dryRun"] = {n: {"verdict": v.value, "reason": r} for n, (v, r) in self.check.dry_run.items()}
        return {"time": format_time(self.time), "action": self.action.value, "weightBefore": self.weight_before,
                "weight": self.weight, "reason": self.reason, "check": check}


@dataclass
class Replay:
    """The outcome of a backtest.

    Attributes:
        start, end: the span replayed.
        interval: seconds between ticks (the rollout's interval).
        ticks: every tick that did something, in time order.
        phase: the rollout's phase after the last tick (``Progressing`` if it never ended).
        weight: the canary's weight after the last tick.
        ended: when it succeeded or rolled back, else ``None``.
        queries: the range queries the replay needed (one per metric and version).
        rollout: the rollout block replayed (overrides applied).
    """

    start: datetime
    end: datetime
    interval: float
    rollout: Rollout | None = None
    ticks: list[Tick] = field(default_factory=list)
    phase: str = ""
    weight: int = 0
    ended: datetime | None = None
    queries: tuple[str, ...] = ()

    @property
    def started(self) -> datetime | None:
        return self.ticks[0].time if self.ticks else None

    @property
    def seconds(self) -> float | None:
        """Seconds from the start to success or rollback, ``None`` if it never ended."""
        return (self.ended - self.ticks[0].time).total_seconds() if self.ended and self.ticks else None

    def to_json(self) -> dict[str, Any]:
        rollout = self.rollout
        settings = {"stable": rollout.stable, "canary": rollout.canary, "steps": list(rollout.steps),
                    "policy": rollout.policy, "minRequests": rollout.min_requests,
                    "failureLimit": rollout.failure_limit} if rollout else {}
        return {**settings, "from": format_time(self.start), "to": format_time(self.end), "interval": self.interval,
                "queries": list(self.queries), "phase": self.phase, "weight": self.weight,
                "ended": format_time(self.ended) if self.ended else None, "seconds": self.seconds,
                "ticks": [t.to_json() for t in self.ticks]}


def _key(moment: datetime | float) -> int:
    """Milliseconds since the epoch: the exact key of a tick in a range result."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else moment
    return int(round(seconds * 1000))


def _by_time(series: Sequence[Series]) -> dict[int, list[Sample]]:
    """A range result as the instant vector of each of its timestamps."""
    out: dict[int, list[Sample]] = {}
    for one in series:
        for stamp, value in one.points:
            out.setdefault(_key(stamp), []).append(Sample(one.labels, value))
    return out


def replay(rollout: Rollout, target: Target, plan: Plan, results: Mapping[str, Sequence[Series]],
           times: Sequence[datetime], env: str) -> Replay:
    """Replay ``rollout`` tick by tick over past metrics.

    Args:
        rollout: the rollout block (with any overrides applied).
        target: the app's Istio labels (:func:`generator.rollout.metrics.target_of`).
        plan: :func:`generator.rollout.metrics.plan` of ``rollout`` and ``target``.
        results: the range result of each query of ``plan`` over ``times`` with step
            ``rollout.interval``; a query without a result counts as no data.
        times: the ticks (:func:`ticks`), timezone-aware.
        env: the environment's name (for the reasons).

    Returns:
        A :class:`Replay`.
    """
    indexed = {query: _by_time(results.get(query, ())) for query in plan.queries}
    out = Replay(times[0], times[-1], rollout.interval, rollout=rollout, queries=plan.queries)
    status: dict[str, Any] | None = None
    for now in times:
        check = None
        if check_due(rollout, status, now):
            key = _key(now)
            vectors = {query: Vector(indexed[query].get(key, ())) for query in plan.queries}
            check = metrics.evaluate(rollout, target, plan, vectors)
        before = int((status or {}).get("canaryWeight", 0))
        made = decide(rollout, env, status, check, now)
        status = made.status
        if made.action is not Action.NOTHING:
            out.ticks.append(Tick(now, made.action, before, int(status.get("canaryWeight", 0)), made.reason, check))
        if status.get("phase") in (SUCCEEDED, ROLLED_BACK):
            out.ended = now
            break
    out.phase = str((status or {}).get("phase", ""))
    out.weight = int((status or {}).get("canaryWeight", 0))
    return out
