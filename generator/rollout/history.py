"""Rollout history: every rollout's timeline, reconstructed from the revisions of its status file. Pure.

The bot commits ``status/<env>/<app>.yaml`` each time a rollout moves (DESIGN §6), and a human
steering it (``meshgen rollout pause|resume|abort|promote``) commits it too. So ``git log`` of
``status/`` holds the whole life of every rollout; this module reads it back. The shell
(:mod:`generator.bot.history`) hands over each revision of each status file, oldest first:
the commit that made it and the file's ``status`` mapping after that commit. What happened is
found by comparing each revision's *content* with the one before -- phase, weights,
failed-check count, a new ``lastCheck`` -- never by parsing commit subjects, so a reworded
message or a commit made by another tool is still understood.

The event kinds, by what changed between two revisions of one status file:

==============  ===========================================================================
``start``       a new stable/canary pair (or the first status), or an approved one leaving
                ``Waiting``: the canary at its first step
``approve``     a pair approved (``Waiting``) where its promotion pipeline asks for approval
``step``        same pair, Progressing, the canary's weight went up after a passing check
``applied``     the current weight was seen applied by the mesh (``applied``: weight, time,
                observed share and requests); its analysis window starts then
``failed-check``  the failed-check count went up (the check's values are in ``check``)
``hold``        a new inconclusive check was committed (the bot commits holds only when its
                committed fields change; other tools may commit them)
``rollback``    RolledBack after a failing check
``succeed``     Succeeded after a passing check at 100 %
``pause`` / ``resume``  Progressing -> Paused -> Progressing
``restart``     RolledBack -> Progressing with the same pair: a new timeline
``abort``       RolledBack without a failing check (by hand)
``promote``     Succeeded without a passing check (by hand), from a rollout or from none
``check``       a new check that moved nothing
``remove``      the status file was deleted
``change``      anything else (an edit the bot does not make)
==============  ===========================================================================

Times are timezone-aware UTC datetimes; an event's time is its commit's author time (the bot
commits the moment it decides), the check's own time is in ``check["time"]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, NamedTuple

from generator.rollout.decision import (
    PAUSED,
    PROGRESSING,
    ROLLED_BACK,
    SUCCEEDED,
    WAITING,
    format_time,
    parse_duration,
    parse_time,
)

#: Kinds that end a timeline.
FINAL = ("rollback", "succeed", "abort", "promote", "remove")


class Revision(NamedTuple):
    """One commit's version of one status file.

    Attributes:
        commit: the commit's full SHA.
        author: the commit's author name; ``email`` their email.
        time: the commit's author time, UTC.
        subject: the commit message's first line.
        env: the environment (``status/<env>/...``); ``app`` the app (the file's stem).
        status: the file's ``status`` mapping after this commit; ``None`` when the commit
            deleted the file or it is not a RolloutStatus.
    """

    commit: str
    author: str
    email: str
    time: datetime
    subject: str
    env: str
    app: str
    status: Mapping[str, Any] | None


@dataclass
class Event:
    """One committed change of a rollout.

    Attributes:
        kind: see the module's table.
        time: the commit's author time, UTC.
        commit, author, email, subject: the commit that made it.
        weight_before, weight: the canary's weight in percent (0-100) before and after.
        phase: the phase after it.
        check: the check committed with it (``time``, ``verdict``, ``reason``, ``metrics``
            and, where given, ``dryRun``), else ``None``.
        message: the status file's ``message`` (why, in words), if any.
        applied: for an ``applied`` event, the status's ``applied`` record (``weight``,
            ``time``, ``observed``, ``requests``), else ``None``.
    """

    kind: str
    time: datetime
    commit: str
    author: str
    email: str
    subject: str
    weight_before: int
    weight: int
    phase: str
    check: dict[str, Any] | None = None
    message: str = ""
    applied: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (times as RFC 3339 strings)."""
        return {"kind": self.kind, "time": format_time(self.time), "commit": self.commit, "author": self.author,
                "email": self.email, "subject": self.subject, "weightBefore": self.weight_before,
                "weight": self.weight, "phase": self.phase, "check": self.check, "message": self.message,
                "applied": self.applied}


@dataclass
class Timeline:
    """One rollout of one app in one environment: one stable/canary pair from its start (or
    restart) to its end, or to now if it is still going.

    Attributes:
        env, app, stable, canary: which rollout.
        events: oldest first.
        group: the ``rollout.group`` the app was rolled out with (its status's ``group``), or
            empty.
    """

    env: str
    app: str
    stable: str
    canary: str
    events: list[Event] = field(default_factory=list)
    group: str = ""

    @property
    def started(self) -> datetime:
        return self.events[0].time

    @property
    def last(self) -> Event:
        return self.events[-1]

    @property
    def ended(self) -> datetime | None:
        """When it succeeded, rolled back, was aborted or promoted; ``None`` while it runs."""
        return self.last.time if self.last.kind in FINAL else None

    @property
    def phase(self) -> str:
        return self.last.phase

    @property
    def id(self) -> str:
        """A stable name for files and anchors: ``<env>-<app>-<canary>-<first commit[:8]>``."""
        return f"{self.env}-{self.app}-{self.canary}-{self.events[0].commit[:8]}"

    def to_json(self) -> dict[str, Any]:
        ended = self.ended
        return {"id": self.id, "env": self.env, "app": self.app, "stable": self.stable, "canary": self.canary,
                "group": self.group or None,
                "phase": self.phase, "weight": self.last.weight, "started": format_time(self.started),
                "ended": format_time(ended) if ended else None,
                "seconds": (ended - self.started).total_seconds() if ended else None,
                "events": [e.to_json() for e in self.events]}


def _new_check(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any] | None:
    check = after.get("lastCheck")
    if not check:
        return None
    old = (before or {}).get("lastCheck")
    if old and old.get("time") == check.get("time") and old.get("verdict") == check.get("verdict"):
        return None
    return dict(check)


def classify(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """The kind of change from one revision of a status mapping to the next (module table)."""
    if after is None:
        return "remove"
    same_pair = bool(before) and before.get("stable") == after.get("stable") \
        and before.get("canary") == after.get("canary")
    phase, was = after.get("phase"), (before or {}).get("phase")
    check = _new_check(before, after)
    verdict = (check or {}).get("verdict")
    if phase == WAITING:
        return "approve"
    if not same_pair:
        return "promote" if phase == SUCCEEDED else "start"
    assert before is not None
    if was == WAITING:
        return "promote" if phase == SUCCEEDED else "start"
    if was == ROLLED_BACK and phase == PROGRESSING:
        return "restart"
    if was == PROGRESSING and phase == PAUSED:
        return "pause"
    if was == PAUSED and phase == PROGRESSING:
        return "resume"
    if phase == ROLLED_BACK and was != ROLLED_BACK:
        return "rollback" if verdict == "fail" else "abort"
    if phase == SUCCEEDED and was != SUCCEEDED:
        return "succeed" if verdict == "pass" else "promote"
    if phase == PROGRESSING and int(after.get("canaryWeight", 0)) > int(before.get("canaryWeight", 0)):
        return "step"
    if phase == PROGRESSING and after.get("applied") and after.get("applied") != before.get("applied"):
        return "applied"
    if int(after.get("failedChecks", 0)) > int(before.get("failedChecks", 0)):
        return "failed-check"
    if verdict == "inconclusive":
        return "hold"
    if check:
        return "check"
    return "change"


def timelines(revisions: Iterable[Revision]) -> list[Timeline]:
    """Every rollout's timeline from the revisions of the status files.

    Args:
        revisions: each status file's revisions oldest first (files may interleave); a
            revision whose content equals the one before (a commit that only touched other
            files' lines or rewrote the same bytes) is skipped.

    Returns:
        Timelines ordered by start time, then environment and app.
    """
    last: dict[tuple[str, str], Mapping[str, Any] | None] = {}
    current: dict[tuple[str, str], Timeline] = {}
    done: list[Timeline] = []
    for rev in revisions:
        key = (rev.env, rev.app)
        before = last.get(key)
        after = rev.status
        if key in last and before == after:
            continue
        last[key] = after
        if before is None and after is None:
            continue
        kind = classify(before, after)
        timeline = current.get(key)
        approved = _same_pair(before, after) and (before or {}).get("phase") == WAITING  # same timeline
        if (kind in ("start", "restart", "approve") and not approved) \
                or (kind == "promote" and not _same_pair(before, after)) or timeline is None:
            if timeline is not None:
                done.append(timeline)
            if after is None:
                current.pop(key, None)
                continue
            timeline = current[key] = Timeline(rev.env, rev.app, str(after.get("stable")), str(after.get("canary")))
            if kind == "restart":
                before = None  # the restarted rollout starts from 0 %
        assert timeline is not None
        same = _same_pair(before, after)
        weight_before = int(before.get("canaryWeight", 0)) if before and same else 0
        state = after or {}
        timeline.events.append(Event(
            kind=kind, time=rev.time, commit=rev.commit, author=rev.author, email=rev.email, subject=rev.subject,
            weight_before=weight_before, weight=int(state.get("canaryWeight", 0)) if after else weight_before,
            phase=str(state.get("phase", "")) if after else "Removed",
            check=_new_check(before if same else None, after) if after else None,
            message=str(state.get("message") or ""),
            applied=dict(state["applied"]) if kind == "applied" and state.get("applied") else None))
        if after and after.get("group"):
            timeline.group = str(after["group"])
        if kind == "remove":
            done.append(current.pop(key))
    done.extend(current.values())
    done.sort(key=lambda t: (t.started, t.env, t.app))
    return done


def _same_pair(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    return bool(before) and bool(after) and before.get("stable") == after.get("stable") \
        and before.get("canary") == after.get("canary")


def select(found: Iterable[Timeline], *, app: str | None = None, envs: Iterable[str] = (),
           since: datetime | None = None) -> list[Timeline]:
    """The timelines of ``app`` (default all) in ``envs`` (default all) with an event at or
    after ``since`` (default: all)."""
    envs = set(envs)
    return [t for t in found if (app is None or t.app == app) and (not envs or t.env in envs)
            and (since is None or t.last.time >= since)]


# --- times on the command line ------------------------------------------------------------

_AGO = re.compile(r"^(?:now-)?([0-9]+)(d|w)$")


def parse_moment(text: str, now: datetime) -> datetime:
    """A moment given on the command line: RFC 3339 (``2026-11-22T10:00:00Z``, an offset, or
    a date ``2026-11-22`` meaning its midnight UTC), ``now``, or a time ago: a Go duration
    (``90m``, ``24h``), days or weeks (``7d``, ``2w``), with or without a leading ``now-``.

    Raises:
        ValueError: none of these; the message says what is accepted.
    """
    value = text.strip()
    if value == "now":
        return now
    match = _AGO.match(value)
    if match:
        unit = 86400 if match.group(2) == "d" else 7 * 86400
        return now - timedelta(seconds=int(match.group(1)) * unit)
    ago = value[4:] if value.startswith("now-") else value
    try:
        return now - timedelta(seconds=parse_duration(ago))
    except ValueError:
        pass
    try:
        moment = parse_time(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22), "
                         "now, or a time ago (30m, 24h, 7d)") from None
    return moment.astimezone(timezone.utc)


def format_span(seconds: float) -> str:
    """``1h2m3s``-style text for a number of seconds (whole seconds)."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs or not total else ""]
    return "".join(parts)
