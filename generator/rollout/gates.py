"""Gates: webhooks asked at the moments of a rollout, Flagger's kinds adapted to commits. Pure.

A rollout's ``gates`` list webhooks the bot POSTs a JSON payload to (:func:`payload`); an
answer in 2xx passes. Flagger's webhooks (https://docs.flagger.app/usage/webhooks) run load
tests and manual gates; here each kind is asked at one moment of the life of a rollout
(:mod:`generator.rollout.decision`), and what it answers is decided here:

=====================  ======================================  =================================
kind                   asked                                   when it does not pass
=====================  ======================================  =================================
``pre-rollout``        before the canary gets its first step   ``hold`` (default): no start yet;
                       (once the promotion pipeline admits)    ``fail``: rolled back unstarted
``step``               at every check that is due              ``fail`` (default): a failed
                                                               check; ``hold``: inconclusive
``confirm-promotion``  at the check before the step to 100 %   ``hold`` (default) or ``fail``
``post-rollout``       when the rollout ends (success,         recorded only
                       rollback, abort, promote)
``rollback``           at every check that is due              a 2xx *asks for* a rollback:
                                                               the canary goes to 0 % now
=====================  ======================================  =================================

A timeout, an unreachable URL or an unset variable in it is a failure like a non-2xx answer.
Each result is written into the commit the tick makes (:meth:`GateResult.line`); a hold
commits nothing, as every hold. The HTTP calls are :mod:`generator.bot.gates`; this module
reads no clock and no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, NamedTuple, Sequence

from generator.errors import as_yaml
from generator.rollout import decision
from generator.rollout.decision import Action, Check, Decision, Rollout, Verdict

PRE_ROLLOUT = "pre-rollout"
STEP = "step"
CONFIRM_PROMOTION = "confirm-promotion"
POST_ROLLOUT = "post-rollout"
ROLLBACK = "rollback"
KINDS = (PRE_ROLLOUT, STEP, CONFIRM_PROMOTION, POST_ROLLOUT, ROLLBACK)

HOLD = "hold"
FAIL = "fail"
#: What a gate that does not pass does, by kind, unless its ``onFailure`` says otherwise.
DEFAULT_ON_FAILURE = {PRE_ROLLOUT: HOLD, STEP: FAIL, CONFIRM_PROMOTION: HOLD}
DEFAULT_TIMEOUT = "10s"
#: Actions that end a rollout: its post-rollout gates are asked.
ENDING = frozenset({Action.SUCCEED, Action.ROLLBACK, Action.ABORT, Action.PROMOTE})

#: ``${NAME}`` in a gate's URL: the value of the environment variable NAME, at call time.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Gate:
    """One item of ``rollout.gates`` (schemas/app.schema.json).

    Attributes:
        name: its name, unique in the rollout; the only way messages name it (the URL may
            hold secrets and is never printed).
        kind: one of :data:`KINDS`.
        url: the URL to POST to, ``${NAME}`` references not yet expanded.
        timeout: seconds to wait for the answer.
        timeout_text: ``timeout`` as written, for messages.
        metadata: strings sent as the payload's ``metadata``.
        on_failure: ``hold`` or ``fail`` (``None`` for post-rollout and rollback gates).
    """

    name: str
    kind: str
    url: str
    timeout: float = 10.0
    timeout_text: str = DEFAULT_TIMEOUT
    metadata: tuple[tuple[str, str], ...] = ()
    on_failure: str | None = None

    @classmethod
    def from_spec(cls, item: Mapping[str, Any]) -> "Gate":
        """Read one ``gates`` item that passed the App schema.

        Raises:
            ValueError: an unknown kind, a ``timeout`` that is not a positive duration, or
                ``onFailure`` on a kind that neither holds nor fails.
        """
        kind = str(item["kind"])
        if kind not in KINDS:
            raise ValueError(f"gate {as_yaml(item.get('name'))}: kind {as_yaml(kind)} is not one of {', '.join(KINDS)}")
        timeout_text = str(item.get("timeout") or DEFAULT_TIMEOUT)
        timeout = decision.parse_duration(timeout_text)
        if timeout <= 0:
            raise ValueError(f"gate {as_yaml(item.get('name'))}: timeout {as_yaml(timeout_text)} must be longer than zero")
        on_failure = item.get("onFailure")
        if on_failure is not None and kind not in DEFAULT_ON_FAILURE:
            raise ValueError(f"gate {as_yaml(item.get('name'))}: a {kind} gate takes no onFailure "
                             f"({'it is recorded only' if kind == POST_ROLLOUT else 'a 2xx answer rolls back'})")
        return cls(name=str(item["name"]), kind=kind, url=str(item["url"]), timeout=timeout,
                   timeout_text=timeout_text,
                   metadata=tuple(sorted((str(k), str(v)) for k, v in (item.get("metadata") or {}).items())),
                   on_failure=on_failure or DEFAULT_ON_FAILURE.get(kind))


def gates_of(rollout_spec: Mapping[str, Any]) -> tuple[Gate, ...]:
    """The ``gates`` of a ``rollout`` block, in order.

    Raises:
        ValueError: as :meth:`Gate.from_spec`, or two gates share a name.
    """
    found = tuple(Gate.from_spec(item) for item in rollout_spec.get("gates") or ())
    names = [g.name for g in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"gate name {as_yaml(twice[0])} is used twice; each gate needs its own name")
    return found


class GateResult(NamedTuple):
    """What one gate answered.

    Attributes:
        gate: the gate.
        ok: it answered 2xx in time.
        detail: ``HTTP 200``, ``HTTP 503``, ``timed out after 10s``, ``variable X is not
            set``, ... -- never the URL.
    """

    gate: Gate
    ok: bool
    detail: str

    def line(self) -> str:
        """``Gate load-test (step): passed, HTTP 200``, for the commit message."""
        if self.gate.kind == ROLLBACK:
            verdict = "asked for a rollback" if self.ok else "no rollback"
        elif self.gate.kind == POST_ROLLOUT:
            verdict = "passed" if self.ok else "failed (recorded only)"
        elif self.ok:
            verdict = "passed"
        else:
            verdict = "failed, holds" if self.gate.on_failure == HOLD else "failed, fails the check"
        return f"Gate {self.gate.name} ({self.gate.kind}): {verdict}, {self.detail}"


def due(gates: Sequence[Gate], rollout: Rollout, status: Mapping[str, Any] | None, now: datetime,
        admission: Any = None) -> list[Gate]:
    """The gates a tick at ``now`` asks, before it decides.

    Args:
        gates: the rollout's gates.
        rollout: the rollout block.
        status: the status file's ``status`` mapping, or ``None``.
        admission: the promotion pipeline's :class:`~generator.rollout.promotion.Admission`
            for a pair that has not started (``None``: no pipeline); a closed one asks nothing.
    """
    if not gates or rollout.stable == rollout.canary:
        return []
    current = status or {}
    started = current.get("stable") == rollout.stable and current.get("canary") == rollout.canary \
        and current.get("phase") != decision.WAITING
    if not started:
        if admission is not None and not admission.open:
            return []
        return [g for g in gates if g.kind == PRE_ROLLOUT]
    if not decision.check_due(rollout, status, now):
        return []
    nxt = decision.next_step(rollout.steps, int(current.get("canaryWeight", 0)))
    kinds = {ROLLBACK, STEP} | ({CONFIRM_PROMOTION} if nxt is not None and nxt[1] == 100 else set())
    return [g for g in gates if g.kind in kinds]


def payload(gate: Gate, app: str, namespace: str, env: str, rollout: Rollout,
            status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON body POSTed to ``gate``: which rollout, where, and how far it is.

    ``weight`` is the canary's current weight (percent 0-100); ``phase`` the status file's
    phase (``Pending`` before the first step).
    """
    current = status or {}
    same = current.get("stable") == rollout.stable and current.get("canary") == rollout.canary
    return {"name": gate.name, "kind": gate.kind, "app": app, "namespace": namespace, "env": env,
            "stable": rollout.stable, "canary": rollout.canary,
            "weight": int(current.get("canaryWeight", 0)) if same else 0,
            "phase": str(current.get("phase")) if same and current.get("phase") else "Pending",
            "metadata": dict(gate.metadata)}


def _rolled_back(rollout: Rollout, old: Mapping[str, Any], now: datetime, reason: str,
                 base: Mapping[str, Any]) -> Decision:
    weight = int(old.get("canaryWeight", 0)) if old.get("canary") == rollout.canary else 0
    new = decision.rolled_back(base, now, f"rollback {rollout.canary} from {weight} % to 0 %: {reason}",
                               lastCheck={"time": decision.format_time(now), "verdict": Verdict.FAIL.value,
                                          "reason": reason})
    return Decision(new, Action.ROLLBACK, new["message"])


def fold(check: Check | None, results: Sequence[GateResult]) -> Check | None:
    """``check`` as the step and confirm-promotion gates leave it: a failing ``fail`` gate
    fails it, a failing ``hold`` gate makes a pass inconclusive; a pass of every gate changes
    nothing."""
    judged = [r for r in results if r.gate.kind in (STEP, CONFIRM_PROMOTION) and not r.ok]
    if check is None or not judged:
        return check
    fails = [f"gate {r.gate.name}: {r.detail}" for r in judged if r.gate.on_failure == FAIL]
    holds = [f"gate {r.gate.name} holds: {r.detail}" for r in judged if r.gate.on_failure != FAIL]
    if fails:
        reason = "; ".join(fails + ([check.reason] if check.verdict is Verdict.FAIL and check.reason else []))
        return Check(Verdict.FAIL, check.metrics, reason)
    if check.verdict is Verdict.PASS:
        return Check(Verdict.INCONCLUSIVE, check.metrics, "; ".join(holds))
    return check


def decide(rollout: Rollout, env: str, status: Mapping[str, Any] | None, check: Check | None, now: datetime,
           admission: Any = None, results: Sequence[GateResult] = ()) -> Decision:
    """:func:`generator.rollout.decision.decide` with what the gates of :func:`due` answered.

    A failing pre-rollout gate holds the start (``WAIT``) or rolls the pair back unstarted; a
    rollback gate that answers 2xx rolls back now; step and confirm-promotion gates judge the
    check (:func:`fold`). Post-rollout gates are asked after the decision and change nothing.
    """
    old = dict(status or {})
    started = old.get("stable") == rollout.stable and old.get("canary") == rollout.canary \
        and old.get("phase") != decision.WAITING
    pre = [r for r in results if r.gate.kind == PRE_ROLLOUT and not r.ok]
    if pre and not started and rollout.stable != rollout.canary and (admission is None or admission.open):
        failing = [r for r in pre if r.gate.on_failure == FAIL]
        if failing:
            reason = "; ".join(f"pre-rollout gate {r.gate.name} failed: {r.detail}" for r in failing)
            base = decision.start(rollout, now, "pre-rollout gates", status).status
            return _rolled_back(rollout, old, now, reason, base)
        reason = "; ".join(f"pre-rollout gate {r.gate.name} holds: {r.detail}" for r in pre)
        return Decision(old, Action.WAIT, f"{rollout.stable} -> {rollout.canary} waits: {reason}")
    asked = [r for r in results if r.gate.kind == ROLLBACK and r.ok]
    if asked and started and old.get("phase") == decision.PROGRESSING:
        reason = "; ".join(f"rollback gate {r.gate.name} asked for it ({r.detail})" for r in asked)
        return _rolled_back(rollout, old, now, reason, old)
    return decision.decide(rollout, env, status, fold(check, results), now, admission)
