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
    PAUSED,
    PROGRESSING,
    ROLLED_BACK,
    SUCCEEDED,
    WAITING,
    format_time,
    parse_duration,
    parse_time,
    rolled_back,
    success_record,
)
from generator.rollout import windows
from generator.spec.config import Repo

DEFAULT_SOAK = "0s"
STOP = "stop"
ROLLBACK_WAVE = "rollback-wave"
ON_FAILURE = (STOP, ROLLBACK_WAVE)


@dataclass(frozen=True)
class Pipeline:
    """The environments a pair goes through, in order.

    Attributes:
        order: environment names, first to last; each appears once.
        soak: seconds a pair must have been ``Succeeded`` in an environment before the next
            environment starts it.
        soak_text: ``soak`` as written (``30m``), for messages.
        approval: environments (of ``order``) where a pair starts only after a human approval.
        waves: the stages of ``order``, first to last: an entry of ``promotion.order`` that is
            a list (``[prod-eu, prod-us]``) is one wave of several environments that start
            together; the next wave waits for every one of them. Default: one environment each.
        on_failure: ``stop`` (default: a rollback stops the pipeline there) or
            ``rollback-wave`` (a rollback in one member of a wave also rolls back the others).
    """

    order: tuple[str, ...]
    soak: float = 0.0
    soak_text: str = DEFAULT_SOAK
    approval: frozenset[str] = frozenset()
    waves: tuple[tuple[str, ...], ...] = ()
    on_failure: str = "stop"

    def __post_init__(self) -> None:
        if not self.waves:
            object.__setattr__(self, "waves", tuple((env,) for env in self.order))

    def _index(self, env: str) -> int | None:
        for index, wave in enumerate(self.waves):
            if env in wave:
                return index
        return None

    def wave(self, env: str) -> tuple[str, ...]:
        """The wave ``env`` belongs to (``(env,)`` alone, or empty when not in ``order``)."""
        index = self._index(env)
        return self.waves[index] if index is not None else ()

    def previous_wave(self, env: str) -> tuple[str, ...]:
        """The environments of the wave before ``env``'s; empty for the first or one not in it."""
        index = self._index(env)
        return self.waves[index - 1] if index else ()

    def previous(self, env: str) -> str | None:
        """The environment before ``env`` when the wave before it has one environment, else
        its environments joined by `` and `` (for messages); ``None`` for the first or one not
        in ``order``."""
        before = self.previous_wave(env)
        return _and(before) if before else None

    def downstream(self, env: str) -> tuple[str, ...]:
        """The environments of the waves after ``env``'s (empty when ``env`` is not in it)."""
        index = self._index(env)
        return tuple(e for wave in self.waves[index + 1:] for e in wave) if index is not None else ()

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
          now: datetime, *, by_hand: bool = False,
          statuses: Mapping[str, Mapping[str, Any] | None] | None = None) -> Admission:
    """Whether the pair ``stable -> canary`` may start in ``env`` at ``now``.

    Args:
        pipeline: the app's pipeline, or ``None`` (no pipeline: always open).
        app: the app's name (for the reason text).
        env: the environment that would start the pair.
        stable, canary: the pair.
        previous_status: the ``status`` mapping of ``status/<previous env>/<app>.yaml`` (when
            the wave before has one environment and ``statuses`` is not given).
        own_status: the ``status`` mapping of ``status/<env>/<app>.yaml`` (it holds an approval).
        now: the tick's time, timezone-aware.
        by_hand: a human starts the pair (``meshgen rollout resume`` or ``promote``): that
            command, a commit by its author, is the approval.
        statuses: the app's status per environment of the pipeline (``None`` where it has
            none); needed for waves: every member of the wave before must have succeeded (the
            soak counts from the last success), and a member of ``env``'s own wave that rolled
            the pair back stops it.

    Returns:
        The :class:`Admission`; open for an environment outside ``order``.
    """
    if pipeline is None or env not in pipeline.order:
        return OPEN
    before = pipeline.previous_wave(env)
    if statuses is None:
        statuses = {before[0]: previous_status} if len(before) == 1 else {}
    waiting: list[Waiting] = []
    reasons: list[str] = []
    soak_until = None
    pair = f"{stable} -> {canary}"
    siblings = rolled_back_in([e for e in pipeline.wave(env) if e != env], statuses, stable, canary)
    if siblings:
        waiting.append(Waiting.STOPPED)
        reasons.append(f"{_and(siblings)} rolled back {pair}: its wave stops")
    if before:
        succeeded = {e: succeeded_at(statuses.get(e), stable, canary) for e in before}
        stopped = rolled_back_in([e for e in before if succeeded[e] is None], statuses, stable, canary)
        pending = [e for e in before if succeeded[e] is None and e not in stopped]
        if stopped:
            waiting.append(Waiting.STOPPED)
            reasons.append(f"{_and(stopped)} rolled back {pair}: the pipeline stops there")
        elif pending:
            waiting.append(Waiting.PREDECESSOR)
            for previous in pending:
                prev = statuses.get(previous) or {}
                if pair_matches(prev, stable, canary) and prev.get("phase") != WAITING:
                    there = f"{prev.get('phase')} at {prev.get('canaryWeight', 0)} %"
                elif prev.get("stable") and not pair_matches(prev, stable, canary):
                    there = f"it has {prev.get('stable')} -> {prev.get('canary')}"
                else:
                    there = "not started"
                reasons.append(f"{previous} has not succeeded with {pair} yet ({there})")
        else:
            when = max(w for w in succeeded.values() if w is not None)
            soak_until = when + timedelta(seconds=pipeline.soak)
            if now < soak_until:
                waiting.append(Waiting.SOAK)
                reasons.append(f"{canary} succeeded in {_and(before)} at {format_time(when)}; "
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
            passed.append(f"{canary} succeeded in {_and(before)} at "
                          f"{format_time(soak_until - timedelta(seconds=pipeline.soak))}"
                          + (f", soak {pipeline.soak_text} over" if pipeline.soak else ""))
        if approval:
            passed.append(f"approved by {approval.get('by')}")
        return Admission(True, (), "; ".join(passed), approval, soak_until)
    return Admission(False, tuple(waiting), "; ".join(reasons), approval, soak_until)


def rolled_back_in(envs: Sequence[str], statuses: Mapping[str, Mapping[str, Any] | None], stable: str,
                   canary: str) -> list[str]:
    """Those of ``envs`` (in their order) whose status rolled ``stable -> canary`` back."""
    return [e for e in envs if pair_matches(statuses.get(e), stable, canary)
            and (statuses.get(e) or {}).get("phase") == ROLLED_BACK]


def wave_failure(pipeline: Pipeline | None, env: str, stable: str, canary: str,
                 own_status: Mapping[str, Any] | None,
                 statuses: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """Why ``env`` must roll back ``stable -> canary`` with its wave, or ``None``.

    With ``promotion.onFailure: rollback-wave``, a member of a wave that rolled the pair back
    takes the others with it: each member still on that canary (Progressing or Paused) rolls
    back, by a commit of its own.

    Args:
        statuses: the app's status per environment (the newest the caller knows).
    """
    if pipeline is None or pipeline.on_failure != ROLLBACK_WAVE:
        return None
    own = own_status or {}
    if not pair_matches(own, stable, canary) or own.get("phase") not in (PROGRESSING, PAUSED):
        return None
    failed = rolled_back_in([e for e in pipeline.wave(env) if e != env], statuses, stable, canary)
    if not failed:
        return None
    return f"{_and(failed)} rolled back {stable} -> {canary} and promotion.onFailure is rollback-wave"


def roll_back_with_wave(status: Mapping[str, Any], now: datetime, why: str) -> Decision:
    """The rollback of one wave member that :func:`wave_failure` asks for: canary 0 %."""
    old = dict(status)
    message = f"rollback {old.get('canary')} from {old.get('canaryWeight', 0)} % to 0 % with its wave: {why}"
    new = rolled_back(old, now, message)
    return Decision(new, Action.ROLLBACK, message)


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
        wave: the index of its wave in :attr:`Pipeline.waves`.
        closed: why nothing moves forward there now (``frozen until ...``, ``outside the
            promotion window ...``), or empty.
    """

    env: str
    pair: tuple[str, str] | None
    label: str
    wave: int = 0
    closed: str = ""


def env_order(settings: Mapping[str, Any], envs: Sequence[str]) -> list[str]:
    """``envs`` in pipeline order: those of ``settings``' (``meshgen.yaml``'s) ``promotion.order``
    first, in that order, the members of a wave (a list entry) in the order written, then the
    others alphabetically. An order that is not a list is no order."""
    promotion = settings.get("promotion") if isinstance(settings, Mapping) else None
    order = promotion.get("order") if isinstance(promotion, Mapping) else None
    flat = [e for entry in (order if isinstance(order, list) else [])
            for e in (entry if isinstance(entry, list) else [entry])]
    first = [e for e in flat if isinstance(e, str) and e in envs]
    return list(dict.fromkeys(first)) + sorted(e for e in envs if e not in first)


def stages(pipeline: Pipeline, app: str, pairs: Mapping[str, tuple[str, str] | None],
           statuses: Mapping[str, Mapping[str, Any] | None], now: datetime,
           closed: Mapping[str, str] | None = None) -> list[Stage]:
    """Each environment of ``pipeline.order`` with what ``app``'s rollout does there.

    Args:
        pairs: ``(stable, canary)`` of the app's rollout per environment (``None``: none there).
        statuses: the ``status`` mapping of each environment's status file (``None``: none).
        now: for the soak.
        closed: per environment closed by its promotion windows, the short reason
            (:func:`generator.rollout.windows.State.reason`).
    """
    out = []
    closed = closed or {}
    for index, wave in enumerate(pipeline.waves):
        for env in wave:
            out.append(_stage(pipeline, app, env, pairs, statuses, now)._replace(wave=index,
                                                                                closed=closed.get(env, "")))
    return out


def _stage(pipeline: Pipeline, app: str, env: str, pairs: Mapping[str, tuple[str, str] | None],
           statuses: Mapping[str, Mapping[str, Any] | None], now: datetime) -> Stage:
    pair = pairs.get(env)
    status = statuses.get(env)
    if pair is None or pair[0] == pair[1]:
        return Stage(env, pair, "no canary")
    stable, canary = pair
    if not not_started(status, stable, canary):
        phase = status.get("phase")  # type: ignore[union-attr]
        weight = status.get("canaryWeight", 0)  # type: ignore[union-attr]
        label = {SUCCEEDED: f"\u2713 {weight} %", ROLLED_BACK: "\u2717 rolled back",
                 "Paused": f"paused at {weight} %"}.get(str(phase), f"{weight} %")
        return Stage(env, pair, label)
    previous = pipeline.previous(env)
    admission = admit(pipeline, app, env, stable, canary, None, status, now, statuses=statuses)
    approved = " (approved)" if admission.approval else ""
    if admission.open:
        label = "starts at the next tick" + approved
    elif Waiting.STOPPED in admission.waiting:
        label = f"stopped ({admission.reason.split(' rolled back ')[0]} rolled back)"
    elif Waiting.APPROVAL in admission.waiting:
        label = "waiting for approval"
    elif Waiting.PREDECESSOR in admission.waiting:
        label = f"waiting for {previous}" + approved
    else:
        label = f"soaking until {format_time(admission.soak_until)}" + approved  # type: ignore[arg-type]
    return Stage(env, pair, label)


def format_stages(app: str, stages: Sequence[Stage]) -> str:
    """One line: ``books v1 -> v2: dev ✓ 100 % → staging 50 % → prod waiting for approval``
    (an environment rolling out another pair names it). A wave of several environments is
    drawn in brackets, its members split by ``|``: ``→ [prod-eu 50 % | prod-us 50 %]``; an
    environment closed by its windows says so: ``prod 50 % (frozen until ...)``."""
    pairs = [s.pair for s in stages if s.pair and s.pair[0] != s.pair[1]]
    main = max(dict.fromkeys(pairs), key=pairs.count) if pairs else None
    waves: dict[int, list[str]] = {}
    for stage in stages:
        other = stage.pair and stage.pair != main and stage.pair[0] != stage.pair[1]
        text = (f"{stage.env} ({stage.pair[0]} -> {stage.pair[1]}) {stage.label}" if other  # type: ignore[index]
                else f"{stage.env} {stage.label}")
        if stage.closed:
            text += f" ({stage.closed})"
        waves.setdefault(stage.wave, []).append(text)
    parts = [members[0] if len(members) == 1 else "[" + " | ".join(members) + "]" for members in waves.values()]
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
    flat: list[tuple[Any, tuple[Any, ...]]] = []  # (name, key path under order)
    for i, entry in enumerate(order):
        if isinstance(entry, list):
            if not entry:
                errors.append(SpecError("promotion.order: an empty wave", place=at("promotion", "order", i),
                                        hint="a wave lists the environments that start together, e.g. "
                                             "[prod-eu, prod-us]"))
            flat.extend((env, (i, j)) for j, env in enumerate(entry))
        else:
            flat.append((entry, (i,)))
    for number, (env, keys) in enumerate(flat):
        i = keys[0]
        if not isinstance(env, str):
            errors.append(SpecError("promotion.order must list environment names, or lists of them (a wave)",
                                    place=at("promotion", "order", *keys)))
            continue
        if env not in envs:
            close = difflib.get_close_matches(env, list(envs), n=1)
            errors.append(SpecError(f"promotion.order: unknown environment {as_yaml(env)}",
                                    place=at("promotion", "order", *keys),
                                    hint=f"did you mean {as_yaml(close[0])}?" if close else
                                    f"known environments: {', '.join(envs)}"))
        if env in seen:
            errors.append(SpecError(f"promotion.order names {as_yaml(env)} twice (items {seen[env] + 1} and {i + 1}): "
                                    "a pipeline is a line, so it would run in a cycle",
                                    place=at("promotion", "order", *keys), hint="list each environment once"))
        else:
            seen[env] = i
    on_failure = value.get("onFailure", STOP)
    if on_failure not in ON_FAILURE:
        errors.append(SpecError(f"promotion.onFailure: {as_yaml(on_failure)} is not one of {', '.join(ON_FAILURE)}",
                                place=origin("onFailure")("promotion", "onFailure"),
                                hint="stop: a rollback stops the pipeline; rollback-wave: it also rolls back "
                                     "the other environments of its wave"))
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
            names = ", ".join(str(e) for e, _ in flat)
            errors.append(SpecError(f"promotion.approval: {as_yaml(env)} is not in promotion.order ({names})",
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
        own_spec = doc.data.get("spec") if isinstance(doc.data.get("spec"), dict) else {}
        if "promotion" in own_spec:
            errors.extend(windows.check(own_spec["promotion"], env,
                                        lambda *keys, doc=doc: doc.place("spec", "promotion", *keys)))
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


def windows_of(repo: Repo) -> dict[str, windows.Windows]:
    """The promotion windows of each environment that has them (``spec.promotion`` of its file).

    Raises:
        SpecErrors: a pipeline or a window is invalid (see :func:`check_pipelines`).
    """
    SpecErrors.collect(check_pipelines(repo))
    return windows.of_environments({env: doc.data.get("spec") for env, doc in repo.environments.items()})


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
        waves = tuple(tuple(entry) if isinstance(entry, list) else (entry,) for entry in merged["order"])
        out[app] = Pipeline(order=tuple(env for wave in waves for env in wave), soak=parse_duration(soak_text),
                            soak_text=soak_text, approval=frozenset(merged.get("approval") or ()), waves=waves,
                            on_failure=str(merged.get("onFailure", STOP)))
    return out
