"""Apps rolled out as a group: ``rollout.group`` on several apps of one environment. Pure.

Services that change together (an API and its worker, a frontend and its backend) carry the
same ``rollout.group: NAME`` in one environment. The bot then moves them as one:

- they start together: a member starts only when every member with a canary would start;
- they step together: a member steps (or succeeds) only when every started member passed its
  check at the same tick; the whole group's step is one commit;
- they roll back together: once a member rolls back (a failed check, a gate, by hand), every
  other member still on its canary is rolled back in the same commit.

Members must step alike (same ``steps`` and ``interval``): :func:`check_members` says where
they differ. :func:`combine` applies the rules to the decisions the tick made for each member,
so the weights of a group's members are equal in every commit. Each member's status records
the group (``group: NAME``), which ``meshgen rollout history`` and ``meshgen report`` show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, NamedTuple, Sequence

from generator.errors import SpecError

from generator.rollout.decision import (
    Action,
    Decision,
    PAUSED,
    PROGRESSING,
    ROLLED_BACK,
    WAITING,
    Rollout,
    rolled_back,
)

#: Actions that move a member forward, which the group makes all-or-nothing.
FORWARD = frozenset({Action.STEP, Action.SUCCEED})
#: Actions that roll a member back, which the group follows.
BACK = frozenset({Action.ROLLBACK, Action.ABORT})


class Member(NamedTuple):
    """One app of a group at a tick.

    Attributes:
        rollout: its rollout block.
        old: its status before the tick (``None``: none).
        made: what the tick decided for it alone.
    """

    rollout: Rollout
    old: Mapping[str, Any] | None
    made: Decision


def check_members(group: str, rollouts: Mapping[str, Rollout]) -> list[tuple[str, str]]:
    """``(app, message)`` for each member whose ``steps`` or ``interval`` differ from the
    group's first member (by name): the group could not step together."""
    names = sorted(rollouts)
    if len(names) < 2:
        return []
    first = rollouts[names[0]]
    found = []
    for app in names[1:]:
        other = rollouts[app]
        if other.steps != first.steps:
            found.append((app, f"rollout.group {group!r}: steps {list(other.steps)} differ from {names[0]}'s "
                               f"{list(first.steps)}; the members of a group step together"))
        if other.interval != first.interval:
            found.append((app, f"rollout.group {group!r}: interval {other.interval_text} differs from "
                               f"{names[0]}'s {first.interval_text}; the members of a group step together"))
    return found


def _started(rollout: Rollout, status: Mapping[str, Any] | None) -> bool:
    return bool(status) and status.get("stable") == rollout.stable and status.get("canary") == rollout.canary \
        and status.get("phase") != WAITING  # type: ignore[union-attr]


def _with_group(made: Decision, group: str) -> Decision:
    if made.action in (Action.NOTHING, Action.WAIT, Action.HOLD) or made.status.get("group") == group:
        return made
    return Decision(dict(made.status, group=group), made.action, made.reason)


def combine(group: str, members: Mapping[str, Member], now: datetime) -> dict[str, Decision]:
    """The decisions of a group's members once the group's rules are applied.

    Args:
        group: the group's name.
        members: each member app's :class:`Member` (apps whose stable equals canary take no
            part: their decision stays).
        now: the tick's time (the time of a rollback the group makes).

    Returns:
        A decision per member: a member's own rollback makes every other member on its
        canary (Progressing or Paused) roll back too; a forward step or a start happens only
        when every taking part member makes one; otherwise those members hold (``HOLD``, or
        ``WAIT`` for a start) with their old status and a reason naming who holds the group.
        Every changed status records ``group``.
    """
    active = {app: m for app, m in members.items() if m.rollout.stable != m.rollout.canary}
    out = {app: m.made for app, m in members.items()}
    failed = sorted(app for app, m in active.items()
                    if m.made.action in BACK or (_started(m.rollout, m.old)
                                                 and (m.old or {}).get("phase") == ROLLED_BACK))
    if failed:
        for app, m in active.items():
            if app in failed or not _started(m.rollout, m.old):
                continue
            old = dict(m.old or {})
            if old.get("phase") not in (PROGRESSING, PAUSED):
                continue
            weight = old.get("canaryWeight", 0)
            message = (f"rollback {m.rollout.canary} from {weight} % to 0 % with group {group}: "
                       f"{', '.join(failed)} rolled back")
            new = rolled_back(old, now, message)
            out[app] = Decision(new, Action.ROLLBACK, message)
        return {app: _with_group(made, group) for app, made in out.items()}
    starting = {app for app, m in active.items() if m.made.action is Action.START}
    unstarted = {app for app, m in active.items() if not _started(m.rollout, m.old)}
    if starting and unstarted - starting:
        holding = sorted(unstarted - starting)
        why = "; ".join(f"{app}: {active[app].made.reason}" for app in holding)
        for app in starting:
            m = active[app]
            out[app] = Decision(dict(m.old or {}), Action.WAIT,
                                f"{m.rollout.stable} -> {m.rollout.canary} waits for its group {group} ({why})")
    forward = {app for app, m in active.items() if m.made.action in FORWARD}
    moving = {app for app, m in active.items() if _started(m.rollout, m.old)
              and (m.old or {}).get("phase") in (PROGRESSING, PAUSED)}
    weights = {int((active[app].made.status or {}).get("canaryWeight", 0)) for app in forward}
    if forward and (forward != moving or len(weights) > 1):
        holding = sorted(moving - forward)
        why = "; ".join(f"{app}: {active[app].made.reason}" for app in holding) or "their weights differ"
        for app in forward:
            m = active[app]
            old = dict(m.old or {})
            out[app] = Decision(old, Action.HOLD, f"hold at {old.get('canaryWeight', 0)} %: group {group} "
                                                  f"steps together ({why})")
    return {app: _with_group(made, group) for app, made in out.items()}


def of_rollouts(blocks: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """The groups of one environment: group name -> member apps (sorted), from each app's
    effective ``rollout`` block."""
    found: dict[str, list[str]] = {}
    for app, block in blocks.items():
        name = block.get("group") if isinstance(block, Mapping) else None
        if isinstance(name, str) and name:
            found.setdefault(name, []).append(app)
    return {name: sorted(apps) for name, apps in found.items()}


def check_environment(apps: Sequence[Any], env: str) -> list[SpecError]:
    """Placed errors of the groups of one environment: members whose ``steps`` or
    ``interval`` differ (checked by ``meshgen check`` and ``render``). The place is the
    member's key where it is written (the app's file, or an environment's override), so the
    same error found in several environments is one error (the caller drops repeats).

    Args:
        apps: the environment's effective apps (:class:`generator.spec.config.EffectiveApp`)
            that passed their own checks.
        env: the environment's name.
    """
    blocks: dict[str, Mapping[str, Any]] = {}
    by_name = {}
    for app in apps:
        spec = app.data.get("spec") if isinstance(app.data, Mapping) else None
        block = spec.get("rollout") if isinstance(spec, Mapping) else None
        if isinstance(block, Mapping) and block.get("group"):
            blocks[app.name], by_name[app.name] = block, app
    errors = []
    for name, members in of_rollouts(blocks).items():
        try:
            rollouts = {app: Rollout.from_spec(blocks[app]) for app in members}
        except (ValueError, KeyError):
            continue  # the rollout block's own checks say what is wrong
        for app, message in check_members(name, rollouts):
            key = "steps" if " steps " in message else "interval"
            place = by_name[app].place("spec", "rollout", key) if key in blocks[app] else \
                by_name[app].place("spec", "rollout", "group")
            errors.append(SpecError(message, place=place,
                                    hint=f"give every app of group {name!r} the same steps and interval"))
    return errors
