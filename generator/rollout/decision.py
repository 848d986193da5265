"""The rollout decision: a pure function from (rollout spec, status, check, now) to the next status.

DESIGN §6 fixes the life of a rollout; this module is that life and nothing else. It reads no
file, asks no Prometheus and no clock: the bot (:mod:`generator.bot.bot`) gathers those and calls
:func:`decide`, so every transition can be tested from a table and every invariant checked
with generated inputs.

The life of a rollout, in the terms of the status file ``status/<env>/<app>.yaml``::

    (no status, another stable/canary pair, or the pair Waiting)
        --start-->  Progressing at steps[0]
        --wait-->   unchanged, while its promotion pipeline holds it back (no commit)
    Progressing, less than `interval` since the last step (or the last failed check)
        --nothing-->  unchanged, no check is due
    Progressing, check due:
        pass          --step-->        next step (failed checks reset)
        pass at 100   --succeed-->     Succeeded, canary keeps 100 %
        inconclusive  --hold-->        unchanged (no data never promotes)
        fail          --fail_count-->  failedChecks + 1
        fail, failedChecks + 1 >= failureLimit
                      --rollback-->    RolledBack, canary 0 %, all traffic to stable
    Paused, Succeeded, RolledBack  --nothing-->

Steering by hand (``meshgen rollout pause|resume|abort|promote``) is :func:`pause`,
:func:`resume`, :func:`abort` and :func:`promote`. Where a promotion pipeline orders the
environments (:mod:`generator.rollout.promotion`), a start -- by a tick, ``resume`` or
``promote`` -- needs the open :class:`~generator.rollout.promotion.Admission` the caller passes.

Weights are percent (integers 0-100) of the traffic of the route named ``rollout.route``;
the stable version gets ``100 - canaryWeight``. Times are timezone-aware UTC datetimes,
written to the status file as RFC 3339 strings with a ``Z`` and whole seconds.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, NamedTuple, Sequence

DEFAULT_STEPS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
DEFAULT_INTERVAL = "1m"
DEFAULT_POLICY = "health"
DEFAULT_MIN_REQUESTS = 100
DEFAULT_FAILURE_LIMIT = 2

PROGRESSING = "Progressing"
PAUSED = "Paused"
SUCCEEDED = "Succeeded"
ROLLED_BACK = "RolledBack"
WAITING = "Waiting"  # approved ahead of its start; no weight moved yet

#: Status fields whose change is worth a commit (DESIGN §6): a hold commits nothing.
COMMITTED_FIELDS = ("phase", "stable", "canary", "canaryWeight", "stepIndex", "failedChecks", "applied")


class Action(str, enum.Enum):
    """What a tick (or a command) did to one rollout."""

    START = "start"            # a new stable/canary pair: the canary gets steps[0]
    STEP = "step"              # a check passed: the canary gets the next step
    HOLD = "hold"              # a check was inconclusive: nothing moves
    FAIL_COUNT = "fail_count"  # a check failed, below failureLimit: counted
    ROLLBACK = "rollback"      # failureLimit failed checks in a row: the canary gets 0 %
    SUCCEED = "succeed"        # the last step (100 %) passed its check
    NOTHING = "nothing"        # no rollout, no check due, or the rollout is over
    PAUSE = "pause"            # by hand: stop analysing, keep the weights
    RESUME = "resume"          # by hand: continue a paused rollout, or restart a rolled-back one
    ABORT = "abort"            # by hand: roll back now
    PROMOTE = "promote"        # by hand: the canary gets 100 % now, the rollout has succeeded
    WAIT = "wait"              # the promotion pipeline holds a new pair back: nothing moves
    APPROVE = "approve"        # by hand: a pair may start where its pipeline asks for approval
    APPLIED = "applied"        # the committed weight is seen applied: its analysis window starts


class Verdict(str, enum.Enum):
    """The outcome of one analysis of the window since the last step."""

    PASS = "pass"                  # every metric within its bounds
    FAIL = "fail"                  # at least one metric out of its bounds
    INCONCLUSIVE = "inconclusive"  # no data, NaN, +Inf, too few requests: never a pass


class Check(NamedTuple):
    """One analysis result, as :mod:`generator.rollout.metrics` computes it.

    Attributes:
        verdict: pass, fail or inconclusive.
        metrics: the values that decided it, by metric name (``None`` where there was no
            value); the stable version's values, where compared, are named ``NAME@VERSION``.
        reason: one line a human reads in ``git log``.
        dry_run: the verdict and reason of each ``dryRun: true`` metric, by name; recorded,
            never part of ``verdict``.
    """

    verdict: Verdict
    metrics: dict[str, float | None]
    reason: str
    dry_run: Mapping[str, tuple[Verdict, str]] = {}


class Decision(NamedTuple):
    """The next status and what happened.

    Attributes:
        status: the next content of the status file's ``status`` mapping (a new dict).
        action: what happened.
        reason: why, in one line.
    """

    status: dict[str, Any]
    action: Action
    reason: str


@dataclass(frozen=True)
class Rollout:
    """A ``rollout`` block with the schema defaults applied (schemas/app.schema.json).

    Attributes:
        stable: the version that keeps the rest of the traffic.
        canary: the version being rolled out.
        route: the name of the route whose split moves.
        steps: canary weights in percent, strictly increasing, the last one 100.
        interval: seconds; the analysis window and the minimum time between steps.
        interval_text: ``interval`` as the spec wrote it (``1m``), for messages.
        policy: ``time``, ``health``, ``metric`` or ``compare``.
        min_requests: fewer canary requests in the window make a check inconclusive.
        failure_limit: consecutive failed checks that roll back.
        tolerance: ``compare``: how much worse than stable the canary may be, ratio 0-1.
        metrics: the ``analysis.metrics`` items as given.
        webhook_url_env: the environment variable holding a Slack webhook URL, if any.
    """

    stable: str
    canary: str
    route: str
    steps: tuple[int, ...] = DEFAULT_STEPS
    interval: float = 60.0
    interval_text: str = DEFAULT_INTERVAL
    policy: str = DEFAULT_POLICY
    min_requests: int = DEFAULT_MIN_REQUESTS
    failure_limit: int = DEFAULT_FAILURE_LIMIT
    tolerance: float = 0.0
    metrics: tuple[Mapping[str, Any], ...] = ()
    webhook_url_env: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "Rollout":
        """Read a ``rollout`` mapping that passed the App schema; apply its defaults.

        Raises:
            ValueError: ``steps`` are not strictly increasing from 1 to a last 100, or
                ``interval`` is not a positive Go duration.
        """
        analysis = spec.get("analysis") or {}
        steps = tuple(DEFAULT_STEPS if spec.get("steps") is None else spec["steps"])
        check_steps(steps)
        interval_text = str(spec.get("interval") or DEFAULT_INTERVAL)
        interval = parse_duration(interval_text)
        if interval <= 0:
            raise ValueError(f"interval {interval_text!r} must be longer than zero")
        slack = (spec.get("notify") or {}).get("slack") or {}
        return cls(
            stable=str(spec["stable"]),
            canary=str(spec["canary"]),
            route=str(spec["route"]),
            steps=steps,
            interval=interval,
            interval_text=interval_text,
            policy=str(spec.get("policy") or DEFAULT_POLICY),
            min_requests=int(analysis.get("minRequests", DEFAULT_MIN_REQUESTS)),
            failure_limit=int(analysis.get("failureLimit", DEFAULT_FAILURE_LIMIT)),
            tolerance=float(analysis.get("tolerance", 0.0)),
            metrics=tuple(analysis.get("metrics") or ()),
            webhook_url_env=slack.get("webhookUrlEnv"),
        )


# --- small pure helpers -------------------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go/Istio duration such as ``500ms``, ``2s`` or ``1m30s``.

    Raises:
        ValueError: the text is not such a duration.
    """
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration like 30s, 1m or 1m30s")
    return total


def check_steps(steps: Sequence[int]) -> None:
    """Refuse steps that are not strictly increasing integers in 1..100 ending at 100.

    Raises:
        ValueError: with what is wrong.
    """
    if not steps:
        raise ValueError("steps must not be empty")
    if any(not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= 100 for s in steps):
        raise ValueError(f"steps {list(steps)} must be integers from 1 to 100")
    if any(a >= b for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps {list(steps)} must be strictly increasing")
    if steps[-1] != 100:
        raise ValueError(f"steps {list(steps)} must end at 100")


def next_step(steps: Sequence[int], weight: int) -> tuple[int, int] | None:
    """The step after ``weight``: ``(index, weight)`` of the first step above it, or ``None``.

    Looking the weight up (rather than trusting a stored index) keeps a rollout on the
    ``steps`` grid when a human edits ``steps`` in the middle of it.
    """
    for index, step in enumerate(steps):
        if step > weight:
            return index, step
    return None


def route_split(stable: str, canary: str, canary_weight: int) -> dict[str, int]:
    """The ``to`` mapping of the rollout route: percent per version, zero weights left out.

    The weights always sum to 100, as Istio's ``HTTPRouteDestination.weight`` requires.
    """
    if not 0 <= canary_weight <= 100:
        raise ValueError(f"canary weight {canary_weight} is not a percent 0-100")
    split = {stable: 100 - canary_weight, canary: canary_weight}
    return {version: weight for version, weight in split.items() if weight}


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds and a ``Z``, as the status file stores times."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | datetime) -> datetime:
    """The inverse of :func:`format_time`; also takes a datetime (YAML loaders make them)."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def rolled_back(old: Mapping[str, Any], now: datetime, message: str, **fields: Any) -> dict[str, Any]:
    """The status after a rollback: ``old`` with phase ``RolledBack``, canary weight 0 %,
    no step (``stepIndex: -1``), ``lastStepTime`` now, ``message`` and any other ``fields``.

    The one place a rolled-back status is made: a failed check, an abort by hand, a gate, a
    rollout group and a wave all end a rollout this way.
    """
    return dict(old, phase=ROLLED_BACK, canaryWeight=0, stepIndex=-1, lastStepTime=format_time(now),
                **fields, message=message)


def committed_change(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether going from ``old`` to ``new`` changes phase, weight, step or failed checks."""
    if old is None:
        return True
    return any(old.get(key) != new.get(key) for key in COMMITTED_FIELDS)


def format_metrics(metrics: Mapping[str, float | None]) -> str:
    """``name=value, ...`` with values rounded for a human (``no data`` for ``None``)."""
    parts = []
    for name, value in metrics.items():
        if value is None:
            text = "no data"
        elif isinstance(value, float) and math.isfinite(value) and value != int(value):
            text = f"{value:.4g}"
        else:
            text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{name}={text}")
    return ", ".join(parts)


def _check_record(check: Check, now: datetime) -> dict[str, Any]:
    record: dict[str, Any] = {"time": format_time(now), "verdict": check.verdict.value}
    if check.reason:
        record["reason"] = check.reason
    if check.metrics:
        record["metrics"] = dict(check.metrics)
    if check.dry_run:
        record["dryRun"] = {name: {"verdict": verdict.value, "reason": why}
                            for name, (verdict, why) in check.dry_run.items()}
    return record


# --- the decision -------------------------------------------------------------------------


def _matches(rollout: Rollout, status: Mapping[str, Any] | None) -> bool:
    return bool(status) and status.get("stable") == rollout.stable and status.get("canary") == rollout.canary


def check_due(rollout_spec: Mapping[str, Any] | Rollout, status: Mapping[str, Any] | None, now: datetime) -> bool:
    """Whether a tick at ``now`` analyses this rollout (and so needs Prometheus).

    A check is due for a progressing rollout once ``interval`` has passed since the last
    step -- since its weight was seen applied, where the status records that
    (:mod:`generator.rollout.applied`) -- and, after a failed check, since that check too (so
    failed checks counted against ``failureLimit`` look at distinct windows).
    """
    when = next_check(rollout_spec, status)
    return when is not None and now >= when


def next_check(rollout_spec: Mapping[str, Any] | Rollout, status: Mapping[str, Any] | None) -> datetime | None:
    """When a check of this rollout is next due (:func:`check_due` turns true then): one
    ``interval`` after the last step (after its weight was seen applied, where the status
    records that) and after the last failed check; ``None`` when no check
    will come (no rollout of this pair started, or it is not ``Progressing``), and the
    minimum datetime when one is due at once (no ``lastStepTime``)."""
    rollout = _as_rollout(rollout_spec)
    if not _matches(rollout, status) or status is None or status.get("phase") != PROGRESSING:
        return None
    since = parse_time(status["lastStepTime"]) if status.get("lastStepTime") else None
    applied = status.get("applied") or {}
    if applied.get("time") and applied.get("weight") == status.get("canaryWeight"):
        seen_at = parse_time(applied["time"])
        since = seen_at if since is None else max(since, seen_at)
    last = status.get("lastCheck") or {}
    if last.get("verdict") == Verdict.FAIL.value and last.get("time"):
        failed_at = parse_time(last["time"])
        since = failed_at if since is None else max(since, failed_at)
    if since is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return since + timedelta(seconds=rollout.interval)


def _as_rollout(spec: Mapping[str, Any] | Rollout) -> Rollout:
    return spec if isinstance(spec, Rollout) else Rollout.from_spec(spec)


def start(rollout: Rollout, now: datetime, why: str, old: Mapping[str, Any] | None = None) -> Decision:
    """A new rollout at its first step. From ``old`` (the status it replaces) it keeps the
    last success (``lastSucceeded``, which gates the next environment of a pipeline) and an
    approval given to this very pair."""
    first = rollout.steps[0]
    status = {
        "phase": PROGRESSING,
        "stable": rollout.stable,
        "canary": rollout.canary,
        "canaryWeight": first,
        "stepIndex": 0,
        "failedChecks": 0,
        "lastStepTime": format_time(now),
        "message": f"{why}: canary {rollout.canary} at {first} %",
    }
    if old:
        record = success_record(old)
        if record:
            status["lastSucceeded"] = record
        if _matches(rollout, old) and old.get("approval"):
            status["approval"] = dict(old["approval"])
    return Decision(status, Action.START, status["message"])


def success_record(old: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a new status remembers of the last success: the old pair's own, if it succeeded,
    else the record the old status carried."""
    if old.get("phase") == SUCCEEDED and old.get("stable") and old.get("canary"):
        record = old.get("lastSucceeded") or {}
        if record.get("stable") == old["stable"] and record.get("canary") == old["canary"]:
            return dict(record)
        when = (old.get("lastCheck") or {}).get("time") or old.get("lastStepTime")
        if when:
            return {"stable": old["stable"], "canary": old["canary"], "time": format_time(parse_time(when))}
    record = old.get("lastSucceeded")
    return dict(record) if record else None


def _succeeded(rollout: Rollout, status: dict[str, Any], now: datetime) -> None:
    status["lastSucceeded"] = {"stable": rollout.stable, "canary": rollout.canary, "time": format_time(now)}


def decide(rollout_spec: Mapping[str, Any] | Rollout, env: str, status: Mapping[str, Any] | None,
           check: Check | None, now: datetime, admission: Any = None) -> Decision:
    """The next status of one app's rollout in one environment after a tick at ``now``.

    Args:
        rollout_spec: the app's effective ``rollout`` block in ``env`` (or a :class:`Rollout`).
        env: the environment's name (for the reason text).
        status: the ``status`` mapping of ``status/<env>/<app>.yaml``, or ``None`` if absent.
        check: the analysis of the window since the last step when :func:`check_due` said
            one was due, else ``None``.
        now: the tick's time, timezone-aware.
        admission: for a pair that has not started, whether its promotion pipeline lets it
            start (a :class:`generator.rollout.promotion.Admission`); ``None``: no pipeline.

    Returns:
        A :class:`Decision`; its status is a new dict, ``status`` is never modified.

    Raises:
        ValueError: the rollout block breaks the rules of :meth:`Rollout.from_spec`.
    """
    rollout = _as_rollout(rollout_spec)
    old = dict(status or {})
    if rollout.stable == rollout.canary:
        return Decision(old, Action.NOTHING, f"no canary: stable and canary are both {rollout.stable}")
    if not _matches(rollout, status) or old.get("phase") == WAITING:
        if admission is not None and not admission.open:
            return Decision(old, Action.WAIT, f"{rollout.stable} -> {rollout.canary} waits: {admission.reason}")
        if status and not _matches(rollout, status):
            why = f"new rollout {rollout.stable} -> {rollout.canary} (was {old.get('stable')} -> {old.get('canary')})"
        else:
            why = f"new rollout {rollout.stable} -> {rollout.canary}"
        if admission is not None and admission.reason:
            why += f" ({admission.reason})"
        return start(rollout, now, why, old)
    phase = old.get("phase")
    if phase != PROGRESSING:
        return Decision(old, Action.NOTHING, f"rollout is {phase}")
    if not check_due(rollout, old, now):
        return Decision(old, Action.NOTHING, f"next check due {rollout.interval_text} after the last step")
    weight = int(old.get("canaryWeight", 0))
    if check is None:
        return Decision(old, Action.HOLD, "hold: no check result")
    new = dict(old)
    new["lastCheck"] = _check_record(check, now)
    values = format_metrics(check.metrics)
    detail = f" ({values})" if values else ""
    if check.verdict is Verdict.INCONCLUSIVE:
        waited = (now - parse_time(old["lastStepTime"])).total_seconds() if old.get("lastStepTime") else 0.0
        held = int(waited // rollout.interval) if rollout.interval else 0
        reason = f"hold at {weight} %: {check.reason}"
        if held > 1:
            reason += f" (no promotion for {held} intervals)"
        return Decision(new, Action.HOLD, reason)
    if check.verdict is Verdict.FAIL:
        failed = int(old.get("failedChecks", 0)) + 1
        new["failedChecks"] = failed
        if failed >= rollout.failure_limit:
            new = rolled_back(new, now, f"rollback {rollout.canary} from {weight} % to 0 % after {failed} "
                                        f"failed check{'s' if failed > 1 else ''}: {check.reason}")
            return Decision(new, Action.ROLLBACK, new["message"] + detail)
        reason = f"failed check {failed} of {rollout.failure_limit} at {weight} %: {check.reason}"
        new["message"] = reason
        return Decision(new, Action.FAIL_COUNT, reason + detail)
    # PASS
    nxt = next_step(rollout.steps, weight)
    new["failedChecks"] = 0
    if nxt is None:
        new.update(phase=SUCCEEDED, canaryWeight=100, stepIndex=len(rollout.steps) - 1)
        new["message"] = f"rollout of {rollout.canary} succeeded at 100 %"
        _succeeded(rollout, new, now)
        return Decision(new, Action.SUCCEED, new["message"] + detail)
    index, step = nxt
    new.update(canaryWeight=step, stepIndex=index, lastStepTime=format_time(now))
    new["message"] = f"step {rollout.canary} {weight} % -> {step} %"
    return Decision(new, Action.STEP, new["message"] + detail)


# --- states the life of a rollout never reaches ---------------------------------------------


class Contradiction(NamedTuple):
    """A status that no tick or command writes (a status file edited by hand).

    Attributes:
        keys: the key path under ``status`` that is wrong (``("canaryWeight",)``).
        message: what is wrong, in words.
        hint: what to do.
    """

    keys: tuple[str, ...]
    message: str
    hint: str


def contradictions(rollout_spec: Mapping[str, Any] | Rollout, status: Mapping[str, Any] | None,
                   app: str, env: str) -> list[Contradiction]:
    """What makes ``status`` (a status file's ``status`` mapping, schema-valid) impossible
    for ``app``'s rollout in ``env``; empty when nothing does.

    - ``Succeeded`` or ``RolledBack`` with a canary weight strictly between 0 and 100: a
      finished rollout sends 100 % (succeeded) or 0 % (rolled back) to its canary; the bot
      would never move it again, leaving the canary at that weight for ever.
    - for the rollout's own stable/canary pair, ``stepIndex`` outside ``-1 ..
      len(steps) - 1`` and ``failedChecks`` above ``failureLimit`` (the bot rolls back when
      failed checks reach it).

    Raises:
        ValueError: the rollout block breaks the rules of :meth:`Rollout.from_spec`.
    """
    rollout = _as_rollout(rollout_spec)
    if not status:
        return []
    found = []
    phase, weight = status.get("phase"), status.get("canaryWeight")
    command = f"meshgen rollout {{}} {app} --env {env}"
    if phase in (SUCCEEDED, ROLLED_BACK) and isinstance(weight, int) and 0 < weight < 100:
        whole = 100 if phase == SUCCEEDED else 0
        hint = (f"set canaryWeight to 100 if {status.get('canary')} did succeed, or delete the file to start "
                f"the rollout again from its first step" if phase == SUCCEEDED else
                f"set canaryWeight to 0, or `{command.format('resume')}` to start again from the first step")
        found.append(Contradiction(("canaryWeight",), (
            f"phase {phase} with canaryWeight {weight}: a {phase} rollout gives its canary {whole} %, and the "
            f"bot never moves a finished rollout, so the canary would stay at {weight} % for ever"), hint))
    if _matches(rollout, status):
        index, steps = status.get("stepIndex"), rollout.steps
        if isinstance(index, int) and not -1 <= index < len(steps):
            found.append(Contradiction(("stepIndex",), (
                f"stepIndex {index} is outside the {len(steps)} steps of the rollout ({', '.join(map(str, steps))}): "
                f"it is -1 (before the first step, after a rollback) to {len(steps) - 1}"),
                f"set stepIndex to the index of canaryWeight's step in steps, or "
                f"`{command.format('abort')}` to roll back"))
        failed = status.get("failedChecks")
        if isinstance(failed, int) and failed > rollout.failure_limit:
            found.append(Contradiction(("failedChecks",), (
                f"failedChecks {failed} is above the rollout's failureLimit {rollout.failure_limit}: the bot rolls "
                f"back when failed checks reach the limit"),
                f"set failedChecks to fewer than {rollout.failure_limit}, or `{command.format('abort')}` to roll back"))
    return found


# --- steering by hand ---------------------------------------------------------------------


def pause(rollout_spec: Mapping[str, Any] | Rollout, status: Mapping[str, Any] | None, now: datetime) -> Decision:
    """Pause a progressing rollout: weights stay, no analysis until :func:`resume`."""
    rollout = _as_rollout(rollout_spec)
    old = dict(status or {})
    if not _matches(rollout, status) or old.get("phase") != PROGRESSING:
        return Decision(old, Action.NOTHING, f"nothing to pause: {_describe(rollout, status)}")
    new = dict(old, phase=PAUSED, message=f"paused by hand at {old.get('canaryWeight')} %")
    return Decision(new, Action.PAUSE, new["message"])


def resume(rollout_spec: Mapping[str, Any] | Rollout, status: Mapping[str, Any] | None, now: datetime,
           admission: Any = None) -> Decision:
    """Resume a paused rollout (the next check comes one interval from now), or restart a
    rolled-back one from its first step (if ``admission``, the pipeline's, is open)."""
    rollout = _as_rollout(rollout_spec)
    old = dict(status or {})
    if _matches(rollout, status) and old.get("phase") == ROLLED_BACK:
        if admission is not None and not admission.open:
            return Decision(old, Action.NOTHING, f"cannot restart {rollout.canary}: {admission.reason}")
        decision = start(rollout, now, f"restart of the rolled-back rollout {rollout.stable} -> {rollout.canary}", old)
        return Decision(decision.status, Action.RESUME, decision.reason)
    if not _matches(rollout, status) or old.get("phase") != PAUSED:
        return Decision(old, Action.NOTHING, f"nothing to resume: {_describe(rollout, status)}")
    new = dict(old, phase=PROGRESSING, lastStepTime=format_time(now), failedChecks=0,
               message=f"resumed by hand at {old.get('canaryWeight')} %")
    new.pop("lastCheck", None)
    return Decision(new, Action.RESUME, new["message"])


def abort(rollout_spec: Mapping[str, Any] | Rollout, status: Mapping[str, Any] | None, now: datetime) -> Decision:
    """Roll back now: canary 0 %, all traffic to stable."""
    rollout = _as_rollout(rollout_spec)
    old = dict(status or {})
    if not _matches(rollout, status) or old.get("phase") not in (PROGRESSING, PAUSED):
        return Decision(old, Action.NOTHING, f"nothing to abort: {_describe(rollout, status)}")
    new = rolled_back(old, now, f"rollback {rollout.canary} from {old.get('canaryWeight')} % to 0 %: aborted by hand")
    return Decision(new, Action.ABORT, new["message"])


def promote(rollout_spec: Mapping[str, Any] | Rollout, status: Mapping[str, Any] | None, now: datetime,
            admission: Any = None) -> Decision:
    """Go to 100 % now, without analysis: the rollout has succeeded. A pair that has not
    started needs ``admission`` (its pipeline's) open, as a tick's start does."""
    rollout = _as_rollout(rollout_spec)
    old = dict(status or {})
    if rollout.stable == rollout.canary or (_matches(rollout, status) and old.get("phase") == SUCCEEDED):
        return Decision(old, Action.NOTHING, f"nothing to promote: {_describe(rollout, status)}")
    ongoing = _matches(rollout, status) and old.get("phase") != WAITING
    if not ongoing and admission is not None and not admission.open:
        return Decision(old, Action.NOTHING, f"cannot promote {rollout.canary}: {admission.reason}")
    base = old if ongoing else start(rollout, now, "promoted by hand", old).status
    weight = old.get("canaryWeight", 0) if ongoing else 0
    new = dict(base, phase=SUCCEEDED, canaryWeight=100, stepIndex=len(rollout.steps) - 1, failedChecks=0,
               lastStepTime=format_time(now), message=f"promote {rollout.canary} from {weight} % to 100 % by hand")
    _succeeded(rollout, new, now)
    return Decision(new, Action.PROMOTE, new["message"])


def _describe(rollout: Rollout, status: Mapping[str, Any] | None) -> str:
    if rollout.stable == rollout.canary:
        return f"stable and canary are both {rollout.stable}"
    if not _matches(rollout, status):
        return f"no rollout of {rollout.canary} has started"
    return f"the rollout of {rollout.canary} is {status.get('phase') if status else None}"
