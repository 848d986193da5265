"""The applied weight: a committed canary weight counts only once the mesh is seen running it. Pure.

A weight committed is not a weight applied: Argo CD or Flux applies the commit seconds or
minutes later, or never (a sync error, a paused Application). So after every weight change
(a start or a step) the rollout's next check waits until the weight is *seen applied*, and its
analysis window starts then:

1. **Observed share.** The canary's share of the requests to the app's two versions over the
   rollout's ``interval`` -- the built-in ``requests`` query of :mod:`generator.rollout.metrics`
   (``sum by (destination_service_namespace, destination_service_name, destination_version)
   (increase(istio_requests_total{reporter="destination"}[interval]))``), one query per
   environment for every app -- is ``p̂ = canary / (canary + stable)`` of ``n = canary +
   stable`` requests. The committed weight ``w`` (0-1) is seen applied when

       |p̂ − w| ≤ z·sqrt(w(1 − w)/n) + ε,   z = :data:`Z` = 3.29, ε = :data:`EPSILON` = 0.02

   Each request goes to the canary with probability ``w`` once the weight is applied, so
   ``n·p̂`` is binomial and, by the normal approximation, ``|p̂ − w|`` exceeds
   ``z·sqrt(w(1 − w)/n)`` with probability ``2·(1 − Φ(3.29)) ≈ 0.1 %``: at most one check in
   a thousand waits one tick longer for a weight that is applied (a false alarm costs a tick,
   never a wrong step). The band narrows as traffic grows (``1/sqrt(n)``); ε, two percentage
   points, covers Istio's rounding and requests that reach a version by another route. Fewer
   than :data:`MIN_REQUESTS` requests, or none to either version where the weight says there
   should be, is no evidence: the tick waits.
2. **Sync state** (optional, where the environment names an Argo CD Application or a Flux
   Kustomization): while the controller has not synced the commit that set the weight, the
   weight is not applied, whatever the traffic says. For policy ``time``, which asks
   Prometheus nothing, a synced commit is what counts; without a sync source, policy ``time``
   counts from the commit, as before.
3. **applyTimeout** (``analysis.applyTimeout``, default :data:`DEFAULT_APPLY_TIMEOUT`): a
   weight not seen applied this long after its commit pauses the rollout by a commit that names
   the unapplied commit and what to look at.

The status file records the current weight's record as ``status.applied`` (``weight``,
``time``, and ``observed``/``requests`` where Prometheus saw it); the commit that writes it is
the rollout's history of when each weight was seen applied.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, NamedTuple

from generator.rollout import decision
from generator.rollout.decision import Action, Decision, Rollout

#: Two-sided normal quantile of the binomial test: P(|Z| > 3.29) ≈ 0.001.
Z = 3.29
#: Fixed slack of the test, as a share 0-1 (two percentage points).
EPSILON = 0.02
#: Fewer requests to the two versions in the window are no evidence either way.
MIN_REQUESTS = 10
DEFAULT_APPLY_TIMEOUT = "10m"


class Observation(NamedTuple):
    """Requests to the app's two versions in the window, from the ``requests`` query.

    Attributes:
        canary: canary requests in the window (``None``: no series).
        stable: stable requests in the window (``None``: no series).
        window: the PromQL duration of the window (``30s``), for messages.
    """

    canary: float | None
    stable: float | None
    window: str = ""

    @property
    def requests(self) -> int:
        """``n``: requests to both versions (absent series count 0)."""
        return int(round((self.canary or 0.0) + (self.stable or 0.0)))

    @property
    def share(self) -> float | None:
        """``p̂``: the canary's share 0-1, ``None`` without requests."""
        total = (self.canary or 0.0) + (self.stable or 0.0)
        return (self.canary or 0.0) / total if total > 0 else None


class Sync(NamedTuple):
    """What the environment's GitOps controller says of the commit that set the weight.

    Attributes:
        synced: ``True``: the controller applied that commit (or a later one); ``False``:
            not yet; ``None``: it could not tell (then only the traffic decides).
        source: what to look at, in words: ``the Argo CD Application argocd/books-dev``.
        detail: the controller's state in a few words (``synced abc1234, operation
            Running``); never a token.
    """

    synced: bool | None
    source: str
    detail: str = ""


class Pending(NamedTuple):
    """What a tick knows about a weight not yet seen applied (gathered by the bot).

    Attributes:
        observation: the traffic, or ``None`` where the policy asks Prometheus nothing.
        sync: the controller's word, or ``None`` where the environment configures none.
        commit: the SHA of the commit that set the weight, if known.
        look_at: what a human should look at when the weight never applies.
    """

    observation: Observation | None = None
    sync: Sync | None = None
    commit: str | None = None
    look_at: str = "the Argo CD Application or Flux Kustomization that applies this environment's rendered/"


def apply_timeout(rollout_spec: Mapping[str, Any]) -> tuple[float, str]:
    """Seconds (and the text as written) of ``analysis.applyTimeout`` of a ``rollout`` block.

    Raises:
        ValueError: not a positive Go duration.
    """
    text = str(((rollout_spec.get("analysis") or {}).get("applyTimeout")) or DEFAULT_APPLY_TIMEOUT)
    seconds = decision.parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"analysis.applyTimeout {text!r} must be longer than zero")
    return seconds, text


def tolerance(weight: float, requests: int) -> float:
    """The accepted distance ``z·sqrt(w(1 − w)/n) + ε`` between observed share and ``weight``
    (both 0-1) for ``requests`` (n > 0) requests."""
    return Z * math.sqrt(weight * (1.0 - weight) / requests) + EPSILON


def seen(weight_percent: int, observation: Observation) -> bool:
    """Whether ``observation`` shows the committed ``weight_percent`` applied (module docstring)."""
    share, n = observation.share, observation.requests
    if share is None or n < MIN_REQUESTS:
        return False
    w = weight_percent / 100.0
    return abs(share - w) <= tolerance(w, n)


def pct(share: float) -> str:
    """A share 0-1 as a percent for messages: ``10 %``, ``12.5 %``."""
    value = round(share * 100, 1)
    return f"{value:g} %"


def is_applied(status: Mapping[str, Any] | None) -> bool:
    """Whether the status records its current canary weight as seen applied, at or after the
    commit that set it."""
    if not status:
        return False
    record = status.get("applied") or {}
    if record.get("weight") != status.get("canaryWeight") or not record.get("time"):
        return False
    if status.get("lastStepTime"):
        return decision.parse_time(record["time"]) >= decision.parse_time(status["lastStepTime"])
    return True


def waiting(rollout: Rollout, status: Mapping[str, Any] | None, needed: bool = True) -> bool:
    """Whether a progressing rollout of this pair waits for its weight to be seen applied
    (``needed``: the environment can see it -- the policy asks Prometheus or a sync source
    is configured)."""
    if not needed or not status or status.get("phase") != decision.PROGRESSING:
        return False
    if status.get("stable") != rollout.stable or status.get("canary") != rollout.canary:
        return False
    return not is_applied(status)


def _record(weight: int, now: datetime, observation: Observation | None) -> dict[str, Any]:
    record: dict[str, Any] = {"weight": weight, "time": decision.format_time(now)}
    if observation is not None and observation.share is not None:
        record["observed"] = round(observation.share, 4)
        record["requests"] = observation.requests
    return record


def _observed(observation: Observation | None) -> str:
    if observation is None:
        return ""
    if observation.share is None:
        window = f" in the last {observation.window}" if observation.window else ""
        return f"no requests to either version{window}"
    return f"observed {pct(observation.share)} of {observation.requests} requests"


def judge(rollout: Rollout, status: Mapping[str, Any], pending: Pending, now: datetime,
          timeout: float, timeout_text: str = DEFAULT_APPLY_TIMEOUT) -> Decision:
    """The decision for a progressing rollout whose weight is not yet seen applied.

    Returns:
        ``APPLIED`` (the status gains ``applied``; the analysis window starts now) when the
        sync source does not deny it and the traffic (where observed) shows it; else
        ``PAUSE`` (a commit) when ``timeout`` seconds have passed since ``lastStepTime``;
        else ``HOLD`` (no commit) saying what it waits for.
    """
    old = dict(status)
    weight = int(old.get("canaryWeight", 0))
    obs, sync = pending.observation, pending.sync
    denied = sync is not None and sync.synced is False
    shown = obs is None or seen(weight, obs)
    confirmed = obs is not None or (sync is not None and sync.synced is True)
    if not denied and shown and confirmed:
        new = dict(old, applied=_record(weight, now, obs))
        said = f" ({_observed(obs)})" if obs is not None else f" ({sync.source} synced)" if sync else ""
        new["message"] = f"{weight} % seen applied{said}; the analysis window starts now"
        return Decision(new, Action.APPLIED, new["message"])
    why = []
    if obs is not None:
        why.append(_observed(obs))
    if sync is not None and sync.synced is not True:
        why.append(f"{sync.source}: {sync.detail or 'not synced'}")
    reason = f"waiting for {weight} % to be applied" + (f"; {'; '.join(why)}" if why else "")
    if timed_out(old, now, timeout):
        commit = f"commit {pending.commit[:12]}" if pending.commit else "the commit that set it"
        look = sync.source if sync is not None else pending.look_at
        new = dict(old, phase=decision.PAUSED)
        new["message"] = (f"paused: {weight} % not seen applied within applyTimeout {timeout_text} of "
                          f"{commit}{'; ' + '; '.join(why) if why else ''}; look at {look}, then "
                          f"`meshgen rollout resume`")
        return Decision(new, Action.PAUSE, new["message"])
    return Decision(old, Action.HOLD, reason)


def timed_out(status: Mapping[str, Any], now: datetime, timeout: float) -> bool:
    """Whether ``timeout`` seconds (``analysis.applyTimeout``) have passed since the status's
    ``lastStepTime`` at ``now``: a weight still unseen then pauses the rollout (:func:`judge`)."""
    since = decision.parse_time(status["lastStepTime"]) if status.get("lastStepTime") else None
    return since is not None and now - since >= timedelta(seconds=timeout)


def decide(rollout: Rollout, status: Mapping[str, Any] | None, pending: Pending | None, now: datetime,
           timeout: float, timeout_text: str, rest: Callable[[], Decision]) -> Decision:
    """The tick's decision with the applied weight in force.

    Args:
        rollout: the rollout block.
        status: the status file's ``status`` mapping.
        pending: what the tick knows of the weight (``None``: the environment cannot see an
            applied weight -- policy ``time`` without a sync source -- so the weight counts
            from its commit).
        now: the tick's time.
        timeout, timeout_text: ``analysis.applyTimeout`` (:func:`apply_timeout`).
        rest: the decision without the applied weight (:func:`generator.rollout.gates.decide`),
            called only when the weight is applied or the rollout is not progressing.

    Returns:
        :func:`judge`'s decision while the weight waits; else ``rest()``'s, whose status
        drops the ``applied`` record once the weight changes (the next weight waits anew).
    """
    if pending is not None and waiting(rollout, status, True):
        assert status is not None
        return judge(rollout, status, pending, now, timeout, timeout_text)
    made = rest()
    new = made.status
    if new.get("applied") and (new.get("applied") or {}).get("weight") != new.get("canaryWeight"):
        new = dict(new)
        new.pop("applied")
        return Decision(new, made.action, made.reason)
    return made
