"""Promotion windows and freezes: when the bot may move a rollout forward in an environment. Pure.

An environment's ``spec.promotion`` (``environments/<env>.yaml``) gives the days and times (in
an IANA time zone) when rollouts may start, step and be promoted there -- its ``windows`` --
and ``freeze`` periods when they may not::

    spec:
      promotion:
        timeZone: Europe/Berlin
        windows: [{days: [Mon, Tue, Wed, Thu], from: "09:00", to: "16:00"}]
        freeze: [{from: 2026-12-19T00:00:00+01:00, to: 2027-01-04T00:00:00+01:00, reason: year end}]

Outside every window (an environment without ``windows`` is always allowed) or inside
a ``freeze``, an environment is *closed*: :func:`gate` turns a start into a wait and a step or
a success into a hold, each without a commit, and says when the next window opens. Failed
checks, rollbacks and steering by hand are never held. Times of day are wall-clock times of
``timeZone`` (Python's :mod:`zoneinfo`, the IANA tz database); ``to`` is exclusive, and a
window whose ``to`` is not after its ``from`` runs past midnight into the next day. A freeze's
times are RFC 3339 (a time without offset, or a bare date, is read in ``timeZone``).

This module reads no clock: the tick passes ``now``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Mapping, NamedTuple, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from generator.errors import Place, SpecError, as_yaml
from generator.rollout.decision import Action, Decision, format_time

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")
#: How far ahead :meth:`Windows.next_open` looks past the last freeze (a week has every day).
LOOKAHEAD_DAYS = 8


@dataclass(frozen=True)
class Allow:
    """One allowed window: ``days`` (0 = Monday) from ``start`` to ``end`` (wall clock).

    ``end`` at or before ``start`` runs past midnight (``end == start``: the whole day);
    ``end`` is ``None`` for ``24:00``.
    """

    days: frozenset[int]
    start: time
    end: time | None

    def contains(self, local: datetime) -> bool:
        """Whether the local (zone-aware) moment lies in this window."""
        moment = local.time().replace(tzinfo=None)
        day = local.weekday()
        if self.end is None:
            return day in self.days and moment >= self.start
        if self.end > self.start:
            return day in self.days and self.start <= moment < self.end
        return (day in self.days and moment >= self.start) or ((day - 1) % 7 in self.days and moment < self.end)

    def text(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{days} {self.start.strftime('%H:%M')}-{end}"


@dataclass(frozen=True)
class Freeze:
    """A period ``[start, end)`` in which the environment is closed, and why."""

    start: datetime
    end: datetime
    reason: str = ""

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end


class State(NamedTuple):
    """Whether an environment is open at a moment.

    Attributes:
        open: rollouts may start, step and be promoted.
        frozen: a freeze holds it (``False`` outside a window but not frozen).
        reason: one line (``frozen until 2027-01-04T00:00:00Z (year end)``; ``outside the
            promotion window (Mon,Tue 09:00-16:00 Europe/Berlin); next window opens at ...``).
        opens: when it opens next (``None`` when open, or when no window opens within
            :data:`LOOKAHEAD_DAYS` after the last freeze).
    """

    open: bool
    frozen: bool = False
    reason: str = ""
    opens: datetime | None = None


OPEN = State(True)


@dataclass(frozen=True)
class Windows:
    """The windows and freezes of one environment.

    Attributes:
        zone: the IANA time zone name (``Europe/Berlin``).
        allow: the allowed windows, ``windows`` in the spec (empty: always allowed, freezes aside).
        freeze: the freeze periods.
    """

    zone: str
    allow: tuple[Allow, ...] = ()
    freeze: tuple[Freeze, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` (timezone-aware) is in a window and in no freeze."""
        if any(f.contains(now) for f in self.freeze):
            return False
        return not self.allow or any(a.contains(now.astimezone(self.tz)) for a in self.allow)

    def next_open(self, now: datetime) -> datetime | None:
        """The first moment at or after ``now`` when the environment is open, or ``None``.

        Candidates are ``now``, each freeze's end and each window's start on every day from
        ``now`` to :data:`LOOKAHEAD_DAYS` past the last freeze; the earliest open one wins.
        """
        tz = self.tz
        last = max([now] + [f.end for f in self.freeze])
        candidates = {now} | {f.end for f in self.freeze if f.end > now}
        day = now.astimezone(tz).date() - timedelta(days=1)
        end_day = last.astimezone(tz).date() + timedelta(days=LOOKAHEAD_DAYS)
        while day <= end_day:
            for allow in self.allow:
                start = datetime.combine(day, allow.start, tzinfo=tz)
                if start >= now:
                    candidates.add(start)
            day += timedelta(days=1)
        for moment in sorted(candidates):
            if moment >= now and self.is_open(moment):
                return moment
        return None

    def state(self, now: datetime) -> State:
        """The :class:`State` at ``now``."""
        if self.is_open(now):
            return OPEN
        opens = self.next_open(now)
        when = (f"next window opens at {format_time(opens)}" if opens is not None
                else f"no window opens within {LOOKAHEAD_DAYS} days after the last freeze")
        frozen = [f for f in self.freeze if f.contains(now)]
        if frozen:
            freeze = max(frozen, key=lambda f: f.end)
            why = f" ({freeze.reason})" if freeze.reason else ""
            return State(False, True, f"frozen until {format_time(freeze.end)}{why}; {when}", opens)
        allowed = "; ".join(a.text() for a in self.allow)
        return State(False, False, f"outside the promotion window ({allowed} {self.zone}); {when}", opens)


#: Actions a closed environment holds back; everything else (failed checks, rollbacks) goes on.
HELD = frozenset({Action.START, Action.STEP, Action.SUCCEED})


def gate(made: Decision, old: Mapping[str, Any] | None, state: State, env: str) -> Decision:
    """``made`` as a closed environment lets it happen.

    Args:
        made: what the tick decided for one rollout.
        old: the rollout's status before (``None`` when there was none).
        state: the environment's :class:`State` at the tick.
        env: the environment's name (for the reason).

    Returns:
        ``made`` when ``state`` is open or ``made`` is not in :data:`HELD`; else the old
        status unchanged with ``WAIT`` (a start) or ``HOLD`` (a step or a success) and a
        reason that says when the next window opens. Nothing is committed for either.
    """
    if state.open or made.action not in HELD:
        return made
    kept = dict(old or {})
    if made.action is Action.START:
        canary = made.status.get("canary")
        return Decision(kept, Action.WAIT, f"{made.status.get('stable')} -> {canary} waits: {env} is {state.reason}")
    weight = kept.get("canaryWeight", 0)
    return Decision(kept, Action.HOLD, f"hold at {weight} %: {env} is {state.reason} (the check passed)")


# --- reading and checking ------------------------------------------------------------------


def _clock(text: Any) -> time | None:
    """``HH:MM`` as a time; ``None`` for ``24:00``.

    Raises:
        ValueError: not such a time.
    """
    if not isinstance(text, str) or not _CLOCK.match(text):
        raise ValueError(f"{as_yaml(text)} is not a time of day like \"09:00\" (quote it: YAML reads 09:00 "
                         "as a number)")
    if text == "24:00":
        return None
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _moment(value: Any, tz: ZoneInfo) -> datetime:
    """An RFC 3339 time (or a date) as an aware datetime; without offset, in ``tz``.

    Raises:
        ValueError: not a time.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{as_yaml(value)} is not a time like 2026-12-19T00:00:00+01:00 or a date") from None
    else:
        raise ValueError(f"{as_yaml(value)} is not a time like 2026-12-19T00:00:00+01:00 or a date")
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def parse(value: Mapping[str, Any]) -> Windows:
    """One environment's ``spec.promotion`` as :class:`Windows`.

    Raises:
        ValueError: with the key path (``windows.0.days``) and what is wrong; see :func:`check`.
    """
    errors = _errors(value)
    if errors:
        raise ValueError(f"{'.'.join(map(str, errors[0][0]))}: {errors[0][1]}")
    zone = value.get("timeZone") or "UTC"
    tz = ZoneInfo(zone)
    allow = tuple(Allow(frozenset(DAYS.index(d) for d in item.get("days") or DAYS), _clock(item["from"]) or time(),
                        _clock(item["to"])) for item in value.get("windows") or ())
    freeze = tuple(Freeze(_moment(f["from"], tz), _moment(f["to"], tz), str(f.get("reason") or ""))
                   for f in value.get("freeze") or ())
    return Windows(zone, allow, freeze)


def _errors(value: Any) -> list[tuple[tuple[Any, ...], str]]:
    """``(key path, message)`` of each problem of one environment's ``spec.promotion``."""
    if not isinstance(value, Mapping):
        return [((), "must be a mapping with timeZone, windows and freeze")]
    found: list[tuple[tuple[Any, ...], str]] = []
    zone = value.get("timeZone", "UTC")
    tz: ZoneInfo | None = None
    try:
        if not isinstance(zone, str) or not zone:
            raise ValueError
        tz = ZoneInfo(zone)
    except (ValueError, OSError, ZoneInfoNotFoundError):  # OSError: a name like a directory
        found.append((("timeZone",), f"{as_yaml(zone)} is not an IANA time zone like Europe/Berlin or UTC"))
    for i, item in enumerate(value.get("windows") or ()):
        if not isinstance(item, Mapping):
            found.append((("windows", i), "must be a mapping with days, from and to"))
            continue
        for j, day in enumerate(item.get("days") or ()):
            if day not in DAYS:
                found.append((("windows", i, "days", j), f"{as_yaml(day)} is not a day ({', '.join(DAYS)})"))
        for key in ("from", "to"):
            try:
                _clock(item.get(key))
            except ValueError as e:
                found.append((("windows", i, key), str(e)))
    for i, item in enumerate(value.get("freeze") or ()):
        if not isinstance(item, Mapping):
            found.append((("freeze", i), "must be a mapping with from, to and reason"))
            continue
        moments = []
        for key in ("from", "to"):
            try:
                moments.append(_moment(item.get(key), tz or ZoneInfo("UTC")))
            except ValueError as e:
                found.append((("freeze", i, key), str(e)))
        if len(moments) == 2 and moments[1] <= moments[0]:
            found.append((("freeze", i, "to"), f"the freeze ends ({format_time(moments[1])}) before it starts "
                                               f"({format_time(moments[0])})"))
    return found


def check(value: Any, env: str, place: Callable[..., Place]) -> list[SpecError]:
    """Every error of an environment's ``spec.promotion``: time zone, days, times, freezes.

    Args:
        value: the ``spec.promotion`` mapping.
        env: the environment's name (for the message).
        place: gives the place of a key path under ``spec.promotion``.
    """
    errors = []
    for keys, message in _errors(value):
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys)
        errors.append(SpecError(f"spec.promotion{where}: {message}", place=place(*keys),
                                hint=f"environment {env}'s promotion windows (docs/rollouts.md)"))
    return errors


def of_environments(specs: Mapping[str, Any]) -> dict[str, Windows]:
    """The windows of each environment that has a ``spec.promotion``, from each environment's
    ``spec`` mapping (checked first: see :func:`check`)."""
    found = {}
    for env, spec in specs.items():
        value = spec.get("promotion") if isinstance(spec, Mapping) else None
        if isinstance(value, Mapping):
            found[str(env)] = parse(value)
    return found


def states(windows: Mapping[str, Windows], now: datetime) -> dict[str, State]:
    """The :class:`State` of each environment that has windows, at ``now``."""
    return {env: w.state(now) for env, w in windows.items()}
