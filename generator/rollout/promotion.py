"""Promotion across environments: a pipeline in which each environment gates the next. Pure.

Teams roll a change through ``dev``, then ``staging``, then ``prod``. ``meshgen.yaml``'s
``promotion`` (overridable per app by ``spec.promotion``) names that line::

    promotion: {order: [dev, staging, prod], soak: 30m, approval: [prod]}

The rollout of a stable -> canary pair in an environment of ``order`` starts only when

- the previous environment of ``order`` has ``Succeeded`` with the same pair, at least ``soak``
  ago (a pair that was rolled back there stops the pipeline for that pair);
- and, for an environment listed in ``approval``, a human approved the pair there (``meshgen
  rollout approve APP --env E``, a commit to the environment's status file).

:func:`admit` decides this from the two status files alone -- the previous environment's and
the environment's own -- so the bot needs nothing but the commit it stands on:
:func:`generator.rollout.decision.decide` turns a closed :class:`Admission` into a wait (no
commit). Because the bot pushes only fast-forward and decides again when the branch moved,
the status it read is the status its start commit is based on: no environment starts before
its predecessor succeeded, whatever the order of ticks and bots.

This module also validates the pipelines (:func:`check_pipelines`) and reads them
(:func:`pipeline_of`); it reads no file and no clock.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from generator.errors import Place, SpecError, SpecErrors, as_yaml
from generator.rollout.decision import (
    Action,
    Decision,
    ROLLED_BACK,
    SUCCEEDED,
    WAITING,
    format_time,
    parse_duration,
    parse_time,
    success_record,
)
from generator.spec.config import Repo

DEFAULT_SOAK = "0s"


@dataclass(frozen=True)
class Pipeline:
    """The environments a pair goes through, in order.

    Attributes:
        order: environment names, first to last; each appears once.
        soak: seconds a pair must have been ``Succeeded`` in an environment before the next
            environment starts it.
        soak_text: ``soak`` as written (``30m``), for messages.
        approval: environments (of ``order``) where a pair starts only after a human approval.
    """

    order: tuple[str, ...]
    soak: float = 0.0
    soak_text: str = DEFAULT_SOAK
    approval: frozenset[str] = frozenset()

    def previous(self, env: str) -> str | None:
        """The environment before ``env`` in ``order``; ``None`` for the first or one not in it."""
        if env not in self.order:
            return None
        index = self.order.index(env)
        return self.order[index - 1] if index else None

    def downstream(self, env: str) -> tuple[str, ...]:
        """The environments after ``env`` in ``order`` (empty when ``env`` is not in it)."""
        return self.order[self.order.index(env) + 1:] if env in self.order else ()

    def needs_approval(self, env: str) -> bool:
        return env in self.approval


class Waiting(str, enum.Enum):
    """Why a pair has not started in an environment."""

    STOPPED = "stopped"          # the previous environment rolled the pair back
    PREDECESSOR = "predecessor"  # the previous environment has not succeeded with the pair (yet)
    SOAK = "soak"                # it succeeded there less than `soak` ago
    APPROVAL = "approval"        # the environment needs an approval that nobody gave


class Admission(NamedTuple):
    """Whether a pair may start in an environment, and why not.

    Attributes:
        open: the pair may start now.
        waiting: what it waits for, in the order of :class:`Waiting` (empty when open).
        reason: one line a human reads (``meshgen rollout status``, the tick's output).
        approval: the approval record in the environment's own status, carried into the start.
        soak_until: when the soak ends, if the previous environment has succeeded.
    """

    open: bool
    waiting: tuple[Waiting, ...] = ()
    reason: str = ""
    approval: Mapping[str, Any] | None = None
    soak_until: datetime | None = None


OPEN = Admission(True)


def pair_matches(status: Mapping[str, Any] | None, stable: str, canary: str) -> bool:
    """Whether a status is about the pair ``stable -> canary``."""
    return bool(status) and status.get("stable") == stable and status.get("canary") == canary


def succeeded_at(status: Mapping[str, Any] | None, stable: str, canary: str) -> datetime | None:
    """When ``stable -> canary`` succeeded in the environment of ``status``, or ``None``.

    The status's own pair counts only while it is ``Succeeded`` (a pair rolled out again or
    rolled back is not, or no longer, succeeded); an environment that moved on to another pair
    keeps its last success in ``lastSucceeded``.
    """
    if not status:
        return None
    record = status.get("lastSucceeded") or {}
    recorded = record.get("stable") == stable and record.get("canary") == canary and record.get("time")
    if pair_matches(status, stable, canary):
        if status.get("phase") != SUCCEEDED:
            return None
        if recorded:
            return parse_time(record["time"])
        last = (status.get("lastCheck") or {}).get("time") or status.get("lastStepTime")
        return parse_time(last) if last else None
    return parse_time(record["time"]) if recorded else None


def admit(pipeline: Pipeline | None, app: str, env: str, stable: str, canary: str,
          previous_status: Mapping[str, Any] | None, own_status: Mapping[str, Any] | None,
          now: datetime, *, by_hand: bool = False) -> Admission:
    """Whether the pair ``stable -> canary`` may start in ``env`` at ``now``.

    Args:
        pipeline: the app's pipeline, or ``None`` (no pipeline: always open).
        app: the app's name (for the reason text).
        env: the environment that would start the pair.
        stable, canary: the pair.
        previous_status: the ``status`` mapping of ``status/<previous env>/<app>.yaml``.
        own_status: the ``status`` mapping of ``status/<env>/<app>.yaml`` (it holds an approval).
        now: the tick's time, timezone-aware.
        by_hand: a human starts the pair (``meshgen rollout resume`` or ``promote``): that
            command, a commit by its author, is the approval.

    Returns:
        The :class:`Admission`; open for an environment outside ``order``.
    """
    if pipeline is None or env not in pipeline.order:
        return OPEN
    waiting: list[Waiting] = []
    reasons: list[str] = []
    soak_until = None
    previous = pipeline.previous(env)
    pair = f"{stable} -> {canary}"
    if previous is not None:
        when = succeeded_at(previous_status, stable, canary)
        if when is None:
            prev = previous_status or {}
            if pair_matches(prev, stable, canary) and prev.get("phase") == ROLLED_BACK:
                waiting.append(Waiting.STOPPED)
                reasons.append(f"{previous} rolled back {pair}: the pipeline stops there")
            else:
                waiting.append(Waiting.PREDECESSOR)
                if pair_matches(prev, stable, canary) and prev.get("phase") != WAITING:
                    there = f"{prev.get('phase')} at {prev.get('canaryWeight', 0)} %"
                elif prev.get("stable") and not pair_matches(prev, stable, canary):
                    there = f"it has {prev.get('stable')} -> {prev.get('canary')}"
                else:
                    there = "not started"
                reasons.append(f"{previous} has not succeeded with {pair} yet ({there})")
        else:
            soak_until = when + timedelta(seconds=pipeline.soak)
            if now < soak_until:
                waiting.append(Waiting.SOAK)
                reasons.append(f"{canary} succeeded in {previous} at {format_time(when)}; "
                               f"soak {pipeline.soak_text} ends at {format_time(soak_until)}")
    approval = None
    if pipeline.needs_approval(env) and not by_hand:
        own = own_status or {}
        if pair_matches(own, stable, canary) and own.get("phase") == WAITING and own.get("approval"):
            approval = own["approval"]
        else:
            waiting.append(Waiting.APPROVAL)
            reasons.append(f"needs an approval: meshgen rollout approve {app} --env {env}")
    if not waiting:
        passed = []
        if soak_until is not None:
            passed.append(f"{canary} succeeded in {previous} at {format_time(soak_until - timedelta(seconds=pipeline.soak))}"
                          + (f", soak {pipeline.soak_text} over" if pipeline.soak else ""))
        if approval:
            passed.append(f"approved by {approval.get('by')}")
        return Admission(True, (), "; ".join(passed), approval, soak_until)
    return Admission(False, tuple(waiting), "; ".join(reasons), approval, soak_until)


def not_started(status: Mapping[str, Any] | None, stable: str, canary: str) -> bool:
    """Whether ``stable -> canary`` has not started in the environment of ``status``: no
    status, another pair, or the pair ``Waiting`` (approved ahead of its start)."""
    return not pair_matches(status, stable, canary) or (status or {}).get("phase") == WAITING


def approve(status: Mapping[str, Any] | None, stable: str, canary: str, approver: str,
            now: datetime) -> dict[str, Any]:
    """The status of an environment after a human approved ``stable -> canary`` there.

    Args:
        status: the environment's current status (another pair, or none).
        approver: ``Name <email>``, the approval commit's git author.

    Returns:
        A new ``Waiting`` status holding the approval (weights untouched: 0 % canary).

    Raises:
        ValueError: the pair has already started there, or is approved already.
    """
    if not not_started(status, stable, canary):
        raise ValueError(f"{stable} -> {canary} has already started: it is {(status or {}).get('phase')}")
    if pair_matches(status, stable, canary) and (status or {}).get("approval"):
        given = status["approval"]  # type: ignore[index]
        raise ValueError(f"{stable} -> {canary} is already approved, by {given.get('by')} at {given.get('time')}")
    new: dict[str, Any] = {"phase": WAITING, "stable": stable, "canary": canary, "canaryWeight": 0,
                           "stepIndex": -1, "failedChecks": 0,
                           "approval": {"by": approver, "time": format_time(now)},
                           "message": f"{stable} -> {canary} approved by {approver}"}
    record = success_record(status or {})
    if record:
        new["lastSucceeded"] = record
    return new


def stop_note(pipeline: Pipeline | None, env: str, canary: str) -> str | None:
    """What a rollback in ``env`` means downstream, or ``None`` when nothing follows it."""
    downstream = pipeline.downstream(env) if pipeline else ()
    if not downstream:
        return None
    return f"promotion of {canary} stops here: {_and(downstream)} will not start it"


def with_stop_note(made: Decision, pipeline: Pipeline | None, env: str) -> Decision:
    """``made`` with :func:`stop_note` added to its reason and status message when it is a
    rollback (by a tick or by hand) in an environment that others follow."""
    if made.action not in (Action.ROLLBACK, Action.ABORT):
        return made
    note = stop_note(pipeline, env, str(made.status.get("canary")))
    if not note:
        return made
    status = dict(made.status, message=f"{made.status.get('message', '')}; {note}".lstrip("; "))
    return Decision(status, made.action, f"{made.reason}; {note}")


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- the pipeline at a glance ------------------------------------------------------------


class Stage(NamedTuple):
    """One environment of a pipeline as ``meshgen rollout status`` shows it.

    Attributes:
        env: the environment.
        pair: ``(stable, canary)`` of the app's rollout there, or ``None`` without one.
        label: ``✓ 100 %``, ``50 %``, ``✗ rolled back``, ``waiting for approval``, ...
    """

    env: str
    pair: tuple[str, str] | None
    label: str


def stages(pipeline: Pipeline, app: str, pairs: Mapping[str, tuple[str, str] | None],
           statuses: Mapping[str, Mapping[str, Any] | None], now: datetime) -> list[Stage]:
    """Each environment of ``pipeline.order`` with what ``app``'s rollout does there.

    Args:
        pairs: ``(stable, canary)`` of the app's rollout per environment (``None``: none there).
        statuses: the ``status`` mapping of each environment's status file (``None``: none).
        now: for the soak.
    """
    out = []
    for env in pipeline.order:
        pair = pairs.get(env)
        status = statuses.get(env)
        if pair is None or pair[0] == pair[1]:
            out.append(Stage(env, pair, "no canary"))
            continue
        stable, canary = pair
        if not not_started(status, stable, canary):
            phase = status.get("phase")  # type: ignore[union-attr]
            weight = status.get("canaryWeight", 0)  # type: ignore[union-attr]
            label = {SUCCEEDED: f"\u2713 {weight} %", ROLLED_BACK: "\u2717 rolled back",
                     "Paused": f"paused at {weight} %"}.get(str(phase), f"{weight} %")
            out.append(Stage(env, pair, label))
            continue
        previous = pipeline.previous(env)
        admission = admit(pipeline, app, env, stable, canary, statuses.get(previous) if previous else None,
                          status, now)
        approved = " (approved)" if admission.approval else ""
        if admission.open:
            label = "starts at the next tick" + approved
        elif Waiting.STOPPED in admission.waiting:
            label = f"stopped ({previous} rolled back)"
        elif Waiting.APPROVAL in admission.waiting:
            label = "waiting for approval"
        elif Waiting.PREDECESSOR in admission.waiting:
            label = f"waiting for {previous}" + approved
        else:
            label = f"soaking until {format_time(admission.soak_until)}" + approved  # type: ignore[arg-type]
        out.append(Stage(env, pair, label))
    return out


def format_stages(app: str, stages: Sequence[Stage]) -> str:
    """One line: ``books v1 -> v2: dev ✓ 100 % → staging 50 % → prod waiting for approval``
    (an environment rolling out another pair names it)."""
    pairs = [s.pair for s in stages if s.pair and s.pair[0] != s.pair[1]]
    main = max(dict.fromkeys(pairs), key=pairs.count) if pairs else None
    parts = []
    for stage in stages:
        other = stage.pair and stage.pair != main and stage.pair[0] != stage.pair[1]
        parts.append(f"{stage.env} ({stage.pair[0]} -> {stage.pair[1]}) {stage.label}" if other  # type: ignore[index]
                     else f"{stage.env} {stage.label}")
    head = f"{app} {main[0]} -> {main[1]}" if main else app
    return f"{head}: " + " \u2192 ".join(parts)


# --- reading and checking pipelines -------------------------------------------------------


def _merged(settings: Any, app_value: Any) -> Mapping[str, Any] | None:
    if app_value is False:
        return None
    base = dict(settings) if isinstance(settings, dict) else {}
    if isinstance(app_value, dict):
        base.update(app_value)
    return base or None


def _check(value: Mapping[str, Any], envs: Sequence[str], place: Callable[..., Place],
           origin: Callable[[str], Callable[..., Place]]) -> list[SpecError]:
    """Errors of one (merged) ``promotion`` mapping; ``origin(key)`` gives the place function
    of the file the key came from."""
    errors: list[SpecError] = []
    order = value.get("order")
    if not isinstance(order, list) or not order:
        return [SpecError("promotion needs `order`, the environments from first to last",
                          place=place(), hint="e.g. promotion: {order: [dev, staging, prod], soak: 30m}")]
    at = origin("order")
    seen: dict[str, int] = {}
    for i, env in enumerate(order):
        if not isinstance(env, str):
            errors.append(SpecError("promotion.order must list environment names", place=at("promotion", "order", i)))
            continue
        if env not in envs:
            close = difflib.get_close_matches(env, list(envs), n=1)
            errors.append(SpecError(f"promotion.order: unknown environment {as_yaml(env)}",
                                    place=at("promotion", "order", i),
                                    hint=f"did you mean {as_yaml(close[0])}?" if close else
                                    f"known environments: {', '.join(envs)}"))
        if env in seen:
            errors.append(SpecError(f"promotion.order names {as_yaml(env)} twice (items {seen[env] + 1} and {i + 1}): "
                                    "a pipeline is a line, so it would run in a cycle",
                                    place=at("promotion", "order", i), hint="list each environment once"))
        else:
            seen[env] = i
    soak = value.get("soak", DEFAULT_SOAK)
    try:
        if not isinstance(soak, str):
            raise ValueError(f"{as_yaml(soak)} is not a duration like 30s, 1m or 1m30s")
        parse_duration(soak)
    except ValueError as e:
        errors.append(SpecError(f"promotion.soak: {e}", place=origin("soak")("promotion", "soak")))
    approval = value.get("approval") or []
    if not isinstance(approval, list):
        errors.append(SpecError("promotion.approval must list environment names",
                                place=origin("approval")("promotion", "approval")))
        approval = []
    for i, env in enumerate(approval):
        if env not in seen:
            errors.append(SpecError(f"promotion.approval: {as_yaml(env)} is not in promotion.order ({', '.join(map(str, order))})",
                                    place=origin("approval")("promotion", "approval", i),
                                    hint="approval names environments of the pipeline; add it to order or remove it"))
    return errors


def _settings_place(repo: Repo) -> Callable[..., Place]:
    doc = repo.settings.doc
    return doc.place if doc is not None else (lambda *keys: Place("meshgen.yaml"))


def check_pipelines(repo: Repo) -> list[SpecError]:
    """Every error of the repository's pipelines: ``meshgen.yaml``'s ``promotion``, each
    app's ``spec.promotion`` merged over it, and ``promotion`` set by an environment override
    (a pipeline spans environments, so no single environment may change it)."""
    envs = list(repo.environments)
    errors: list[SpecError] = []
    settings = repo.settings.raw.get("promotion")
    in_settings = _settings_place(repo)
    if isinstance(settings, dict):
        errors.extend(_check(settings, envs, lambda *k: in_settings("promotion"), lambda key: in_settings))
    for name, doc in repo.apps.items():
        spec = doc.data.get("spec") if isinstance(doc.data.get("spec"), dict) else {}
        own = spec.get("promotion")
        if not isinstance(own, dict) or not own:
            continue
        merged = _merged(settings, own)
        if merged is None:
            continue

        def origin(key: str, doc=doc, own=own) -> Callable[..., Place]:
            if key in own:
                return lambda *keys: doc.place("spec", *keys)
            return in_settings

        errors.extend(_check(merged, envs, lambda *k, doc=doc: doc.place("spec", "promotion"), origin))
    for env, doc in repo.environments.items():
        apps = ((doc.data.get("spec") or {}).get("apps") or {}) if isinstance(doc.data.get("spec"), dict) else {}
        for app, override in apps.items() if isinstance(apps, dict) else ():
            if isinstance(override, dict) and isinstance(override.get("spec"), dict) \
                    and "promotion" in override["spec"]:
                errors.append(SpecError(f"environment {as_yaml(env)} overrides the promotion pipeline of {as_yaml(app)}",
                                        place=doc.key_place("spec", "apps", app, "spec", "promotion"),
                                        hint=f"a pipeline spans environments: set spec.promotion in the app's "
                                             f"own file, or promotion in meshgen.yaml"))
    return errors


def pipeline_of(repo: Repo, app: str) -> Pipeline | None:
    """The pipeline of ``app``: ``meshgen.yaml``'s ``promotion`` with the app's
    ``spec.promotion`` keys over it; ``None`` without one (or with ``spec.promotion: false``).

    Raises:
        SpecErrors: a pipeline of the repository is invalid (see :func:`check_pipelines`).
    """
    return pipelines(repo)[app]


def pipelines(repo: Repo) -> dict[str, Pipeline | None]:
    """:func:`pipeline_of` for every app, the pipelines checked once.

    Raises:
        SpecErrors: a pipeline is invalid.
    """
    SpecErrors.collect(check_pipelines(repo))
    settings = repo.settings.raw.get("promotion")
    out: dict[str, Pipeline | None] = {}
    for app, doc in repo.apps.items():
        spec = doc.data.get("spec")
        merged = _merged(settings, spec.get("promotion") if isinstance(spec, dict) else None)
        if merged is None:
            out[app] = None
            continue
        soak_text = str(merged.get("soak", DEFAULT_SOAK))
        out[app] = Pipeline(order=tuple(merged["order"]), soak=parse_duration(soak_text), soak_text=soak_text,
                            approval=frozenset(merged.get("approval") or ()))
    return out
