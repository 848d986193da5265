"""Waves across clusters, apps rolled out as a group, promotion windows and freezes.

The decisions are pure (:mod:`generator.rollout.promotion`, :mod:`generator.rollout.groups`,
:mod:`generator.rollout.windows`) and tested by table and by Hypothesis: never a group split
across weights in any commit, never a wave advancing past a failed member, nothing started,
stepped or promoted in a freeze or outside a window. The bot runs them on real git remotes,
and a group's checks ask a real Prometheus.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from demo.fakemesh import FakeMesh
from generator.bot import bot
from generator.render import output, render
from generator.rollout import decision, groups, promotion, windows
from generator.rollout.decision import Action, Check, Rollout, Verdict
from generator.rollout.promotion import Pipeline, Waiting
from tests.conftest import build_file_tree, run_meshgen
from tests.promfixtures import git, wait_until

T0 = datetime(2026, 12, 7, 9, 0, 0, tzinfo=timezone.utc)  # a Monday, 10:00 in Berlin


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def status(phase="Progressing", weight=50, stable="v1", canary="v2", **extra):
    found = {"phase": phase, "stable": stable, "canary": canary, "canaryWeight": weight,
             "stepIndex": 0 if weight else -1, "failedChecks": 0, "lastStepTime": decision.format_time(T0)}
    found.update(extra)
    return found


# --- windows and freezes (pure) ------------------------------------------------------------

BERLIN = {"timeZone": "Europe/Berlin", "windows": [{"days": ["Mon", "Tue", "Wed", "Thu"], "from": "09:00",
                                                   "to": "16:00"}],
          "freeze": [{"from": "2026-12-19", "to": "2027-01-04", "reason": "year end"}]}


@pytest.mark.parametrize("moment,open_,reason", [
    (T0, True, ""),
    (datetime(2026, 12, 7, 7, 59, tzinfo=timezone.utc), False,
     "outside the promotion window (Mon,Tue,Wed,Thu 09:00-16:00 Europe/Berlin); next window opens at "
     "2026-12-07T08:00:00Z"),
    (datetime(2026, 12, 10, 15, 0, tzinfo=timezone.utc), False,  # Thursday 16:00 in Berlin: `to` is exclusive
     "outside the promotion window (Mon,Tue,Wed,Thu 09:00-16:00 Europe/Berlin); next window opens at "
     "2026-12-14T08:00:00Z"),
    (datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc), False,
     "frozen until 2027-01-03T23:00:00Z (year end); next window opens at 2027-01-04T08:00:00Z"),
])
def test_a_window_says_whether_it_is_open_and_when_it_opens(moment, open_, reason):
    state = windows.parse(BERLIN).state(moment)
    assert (state.open, state.reason) == (open_, reason)


def test_a_window_past_midnight_and_summer_time():
    night = windows.parse({"timeZone": "Europe/Berlin", "windows": [{"days": ["Sat"], "from": "22:00", "to": "02:00"}]})
    # Saturday 23:30 and Sunday 01:30 Berlin (winter: UTC+1) are in it, Sunday 02:00 is not
    assert night.is_open(datetime(2026, 12, 12, 22, 30, tzinfo=timezone.utc))
    assert night.is_open(datetime(2026, 12, 13, 0, 30, tzinfo=timezone.utc))
    assert not night.is_open(datetime(2026, 12, 13, 1, 0, tzinfo=timezone.utc))
    # in summer the same wall-clock window is an hour earlier in UTC
    assert night.next_open(datetime(2026, 7, 1, tzinfo=timezone.utc)) == datetime(2026, 7, 4, 20, 0, tzinfo=timezone.utc)


def test_a_closed_window_holds_starts_and_steps_never_rollbacks():
    closed = windows.parse(BERLIN).state(datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc))
    spec = Rollout("v1", "v2", "default", steps=(50, 100), interval=60, interval_text="1m")
    started = decision.decide(spec, "prod", None, None, at(0))
    held = windows.gate(started, None, closed, "prod")
    assert held.action is Action.WAIT and held.status == {}
    assert held.reason == ("v1 -> v2 waits: prod is frozen until 2027-01-03T23:00:00Z (year end); next window "
                           "opens at 2027-01-04T08:00:00Z")
    old = status(weight=50)
    passed = decision.decide(spec, "prod", old, Check(Verdict.PASS, {}, "ok"), at(60))
    assert windows.gate(passed, old, closed, "prod").action is Action.HOLD
    failed = decision.decide(spec, "prod", dict(old, failedChecks=1), Check(Verdict.FAIL, {}, "errors"), at(60))
    assert failed.action is Action.ROLLBACK
    assert windows.gate(failed, old, closed, "prod") is failed


window_specs = st.fixed_dictionaries({
    "timeZone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    "windows": st.lists(st.fixed_dictionaries({
        "days": st.lists(st.sampled_from(windows.DAYS), min_size=1, max_size=7, unique=True),
        "from": st.sampled_from(["00:00", "06:30", "09:00", "17:00", "22:00"]),
        "to": st.sampled_from(["02:00", "09:00", "12:15", "18:00", "24:00"])}), max_size=3),
    "freeze": st.lists(st.builds(lambda start, hours: {"from": (T0 + timedelta(hours=start)).isoformat(),
                                                       "to": (T0 + timedelta(hours=start + hours)).isoformat()},
                                 st.integers(-48, 24 * 14), st.integers(1, 24 * 10)), max_size=3)})
verdicts = st.sampled_from(list(Verdict))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(spec=window_specs, minutes=st.integers(0, 60 * 24 * 21), weight=st.sampled_from([None, 10, 50, 100]),
       verdict=verdicts, failed=st.integers(0, 1))
def test_nothing_starts_steps_or_succeeds_while_an_environment_is_closed(spec, minutes, weight, verdict, failed):
    w = windows.parse(spec)
    now = T0 + timedelta(minutes=minutes)
    state = w.state(now)
    rollout = Rollout("v1", "v2", "default", steps=(10, 50, 100), interval=60, interval_text="1m")
    old = None if weight is None else status(weight=weight, failedChecks=failed,
                                             lastStepTime=decision.format_time(now - timedelta(minutes=5)))
    check = Check(verdict, {}, verdict.value) if decision.check_due(rollout, old, now) else None
    made = windows.gate(decision.decide(rollout, "prod", old, check, now), old, state, "prod")
    assert state.open == w.is_open(now)
    if not state.open:
        assert made.action not in (Action.START, Action.STEP, Action.SUCCEED)
        commits = made.action not in (Action.NOTHING, Action.WAIT) and decision.committed_change(old, made.status)
        assert made.action in (Action.ROLLBACK, Action.FAIL_COUNT) or not commits
        if state.opens is not None:  # the next window opens then, and not a minute before
            assert state.opens > now and w.is_open(state.opens)
            assert not w.is_open(state.opens - timedelta(minutes=1))
        assert "next window opens at" in state.reason or "no window opens" in state.reason
    if verdict is Verdict.FAIL and failed and old:  # rollbacks always happen
        assert made.action is Action.ROLLBACK


# --- groups (pure) -------------------------------------------------------------------------

GROUP_ROLLOUT = Rollout("v1", "v2", "default", steps=(10, 50, 100), interval=60, interval_text="1m")


def test_group_members_whose_steps_or_interval_differ_are_named():
    other = Rollout("v1", "v2", "default", steps=(20, 100), interval=120, interval_text="2m")
    assert groups.check_members("shop", {"books": GROUP_ROLLOUT, "reviews": other}) == [
        ("reviews", "rollout.group 'shop': steps [20, 100] differ from books's [10, 50, 100]; the members of a "
                    "group step together"),
        ("reviews", "rollout.group 'shop': interval 2m differs from books's 1m; the members of a group step together"),
    ]


def test_a_group_steps_only_when_every_member_passes_and_rolls_back_as_one():
    old = status(weight=10)
    now = at(60)
    passed = decision.decide(GROUP_ROLLOUT, "prod", old, Check(Verdict.PASS, {}, "ok"), now)
    held = decision.decide(GROUP_ROLLOUT, "prod", old, Check(Verdict.INCONCLUSIVE, {}, "no requests to v2"), now)
    out = groups.combine("shop", {"books": groups.Member(GROUP_ROLLOUT, old, passed),
                                  "reviews": groups.Member(GROUP_ROLLOUT, old, held)}, now)
    assert out["books"].action is Action.HOLD and out["books"].status == old
    assert out["books"].reason == "hold at 10 %: group shop steps together (reviews: hold at 10 %: no requests to v2)"
    both = groups.combine("shop", {"books": groups.Member(GROUP_ROLLOUT, old, passed),
                                   "reviews": groups.Member(GROUP_ROLLOUT, old, passed)}, now)
    assert [d.status["canaryWeight"] for d in both.values()] == [50, 50]
    assert {d.status["group"] for d in both.values()} == {"shop"}
    failing = dict(old, failedChecks=1)
    rolled = decision.decide(GROUP_ROLLOUT, "prod", failing, Check(Verdict.FAIL, {}, "errors"), now)
    out = groups.combine("shop", {"books": groups.Member(GROUP_ROLLOUT, old, passed),
                                  "reviews": groups.Member(GROUP_ROLLOUT, failing, rolled)}, now)
    assert [(d.action, d.status["canaryWeight"]) for d in out.values()] == [(Action.ROLLBACK, 0)] * 2
    assert out["books"].reason == "rollback v2 from 10 % to 0 % with group shop: reviews rolled back"


member_world = st.fixed_dictionaries({
    "apps": st.integers(2, 4),
    "rounds": st.lists(st.tuples(st.sampled_from([0, 30, 60, 61, 200]),
                                 st.lists(verdicts, min_size=4, max_size=4),
                                 st.sampled_from([None, "abort", "pause", "resume"]), st.integers(0, 3),
                                 st.booleans()),  # whether each member's start is admitted
                       min_size=1, max_size=40)})


@settings(derandomize=True, max_examples=300, deadline=None)
@given(world=member_world)
def test_a_group_is_never_split_across_weights_in_any_commit(world):
    apps = [f"app{i}" for i in range(world["apps"])]
    state: dict[str, dict | None] = {app: None for app in apps}
    now = T0
    for seconds, results, human, who, admitted in world["rounds"]:
        now += timedelta(seconds=seconds)
        members = {}
        for app, verdict in zip(apps, results):
            old = state[app]
            check = Check(verdict, {}, verdict.value) if decision.check_due(GROUP_ROLLOUT, old, now) else None
            admission = promotion.Admission(admitted or app != apps[0], (), "" if admitted else "held")
            members[app] = groups.Member(GROUP_ROLLOUT, old,
                                         decision.decide(GROUP_ROLLOUT, "prod", old, check, now, admission))
        out = groups.combine("shop", members, now)
        for app, made in out.items():  # one commit: every member's new status
            if made.action not in (Action.NOTHING, Action.WAIT, Action.HOLD):
                state[app] = made.status
        live = {(s or {}).get("canaryWeight", 0) for s in state.values() if s and s["phase"] in ("Progressing",
                                                                                               "Paused", "Succeeded")}
        assert len(live) <= 1, f"group split across weights: {state}"
        if any(s and s["phase"] == "RolledBack" for s in state.values()):
            assert all(s is None or s["phase"] in ("RolledBack", "Succeeded") for s in state.values()), state
        if human:  # a human steers one member: the group follows at the next tick
            app = apps[who % len(apps)]
            made = {"abort": decision.abort, "pause": decision.pause,
                    "resume": decision.resume}[human](GROUP_ROLLOUT, state[app], now)
            if made.action is not Action.NOTHING and human != "resume":
                state[app] = made.status
            if human == "resume" and made.action is Action.RESUME and state[app]["phase"] == "Paused":
                state[app] = made.status


# --- waves (pure) --------------------------------------------------------------------------

WAVES = Pipeline(order=("dev", "prod-eu", "prod-us", "after"), soak=600, soak_text="10m",
                 waves=(("dev",), ("prod-eu", "prod-us"), ("after",)), on_failure=promotion.ROLLBACK_WAVE)


def test_the_next_wave_waits_for_every_member_and_soaks_from_the_last():
    done = status("Succeeded", 100, lastSucceeded={"stable": "v1", "canary": "v2", "time": "2026-12-07T09:00:00Z"})
    late = status("Succeeded", 100, lastSucceeded={"stable": "v1", "canary": "v2", "time": "2026-12-07T09:30:00Z"})
    going = status(weight=50)
    admission = promotion.admit(WAVES, "books", "after", "v1", "v2", None, None, at(3600),
                                statuses={"prod-eu": done, "prod-us": going})
    assert admission.waiting == (Waiting.PREDECESSOR,)
    assert admission.reason == "prod-us has not succeeded with v1 -> v2 yet (Progressing at 50 %)"
    soaking = promotion.admit(WAVES, "books", "after", "v1", "v2", None, None, at(1801),
                              statuses={"prod-eu": done, "prod-us": late})
    assert soaking.reason == ("v2 succeeded in prod-eu and prod-us at 2026-12-07T09:30:00Z; soak 10m ends at "
                              "2026-12-07T09:40:00Z")
    assert promotion.admit(WAVES, "books", "after", "v1", "v2", None, None, at(2400),
                           statuses={"prod-eu": done, "prod-us": late}).open
    # both members of a wave start on the same word: the wave before them
    for env in ("prod-eu", "prod-us"):
        assert promotion.admit(WAVES, "books", env, "v1", "v2", None, None, at(2400), statuses={"dev": late}).open


def test_a_rollback_in_a_wave_stops_the_pipeline_and_rolls_back_its_wave():
    rolled = status("RolledBack", 0)
    going = status(weight=50)
    stopped = promotion.admit(WAVES, "books", "after", "v1", "v2", None, None, at(0),
                              statuses={"prod-eu": rolled, "prod-us": status("Succeeded", 100)})
    assert stopped.waiting == (Waiting.STOPPED,)
    assert stopped.reason == "prod-eu rolled back v1 -> v2: the pipeline stops there"
    why = promotion.wave_failure(WAVES, "prod-us", "v1", "v2", going, {"prod-eu": rolled, "prod-us": going})
    assert why == "prod-eu rolled back v1 -> v2 and promotion.onFailure is rollback-wave"
    made = promotion.roll_back_with_wave(going, at(0), why)
    assert (made.action, made.status["phase"], made.status["canaryWeight"]) == (Action.ROLLBACK, "RolledBack", 0)
    stop = Pipeline(WAVES.order, waves=WAVES.waves)  # onFailure: stop leaves the other member alone
    assert promotion.wave_failure(stop, "prod-us", "v1", "v2", going, {"prod-eu": rolled}) is None
    # a member that has not started does not start after its sibling rolled back
    sibling = promotion.admit(WAVES, "books", "prod-us", "v1", "v2", None, None, at(3600),
                              statuses={"dev": status("Succeeded", 100), "prod-eu": rolled})
    assert sibling.reason == "prod-eu rolled back v1 -> v2: its wave stops"


wave_states = st.sampled_from([None, "Waiting", "Progressing", "Paused", "Succeeded", "RolledBack"])


@settings(derandomize=True, max_examples=400, deadline=None)
@given(members=st.lists(st.tuples(wave_states, st.integers(0, 7200)), min_size=1, max_size=4),
       seconds=st.integers(0, 9000), soak=st.sampled_from([0, 600]))
def test_a_wave_never_advances_past_a_failed_or_unfinished_member(members, seconds, soak):
    names = tuple(f"prod-{i}" for i in range(len(members)))
    pipeline = Pipeline(("dev",) + names + ("after",), soak=soak, soak_text=f"{soak}s",
                        waves=(("dev",), names, ("after",)), on_failure=promotion.ROLLBACK_WAVE)
    statuses = {}
    for name, (phase, done) in zip(names, members):
        if phase is None:
            statuses[name] = None
            continue
        extra = {"lastSucceeded": {"stable": "v1", "canary": "v2", "time": decision.format_time(at(done))}} \
            if phase == "Succeeded" else {}
        statuses[name] = status(phase, 100 if phase == "Succeeded" else 0 if phase == "RolledBack" else 50, **extra)
    admission = promotion.admit(pipeline, "books", "after", "v1", "v2", None, None, at(seconds), statuses=statuses)
    if admission.open:
        assert all(s and s["phase"] == "Succeeded" for s in statuses.values())
        assert at(seconds) >= max(at(done) for _, done in members) + timedelta(seconds=soak)
    if any(s and s["phase"] == "RolledBack" for s in statuses.values()):
        assert Waiting.STOPPED in admission.waiting
        for name in names:  # every member still on the canary is rolled back with its wave
            own = statuses[name]
            why = promotion.wave_failure(pipeline, name, "v1", "v2", own, statuses)
            others = any(s and s["phase"] == "RolledBack" for n, s in statuses.items() if n != name)
            assert (why is not None) == bool(own and own["phase"] in ("Progressing", "Paused") and others)


# --- meshgen check: clear errors -------------------------------------------------------------

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  service: {{host: {name}, port: 80}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: default
      to: v1
  rollout: {rollout}
"""
TIME_ROLLOUT = {"stable": "v1", "canary": "v2", "route": "default", "steps": [50, 100], "interval": "1h",
                "policy": "time"}


def env_file(name: str, url: str = "http://127.0.0.1:9", extra: str = "") -> str:
    return (f"apiVersion: meshgen.io/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\n"
            f"spec:\n  cluster: {{name: {name}, server: https://{name}.example.com}}\n"
            f"  prometheus: {{url: {url}}}\n{extra}")


def tree(root: Path, settings_text: str, envs: dict[str, str], apps: dict[str, dict], namespace: str = "mesh"
         ) -> Path:
    files = {"meshgen.yaml": settings_text}
    files.update({f"environments/{name}.yaml": text for name, text in envs.items()})
    files.update({f"apps/{name}.yaml": APP.format(name=name, namespace=namespace, rollout=json.dumps(block))
                  for name, block in apps.items()})
    return build_file_tree(root, files)


@pytest.mark.parametrize("settings_text,env_extra,apps,expected", [
    ("promotion: {order: [dev, [prod-eu, prod-eux]]}\n", "", {"books": TIME_ROLLOUT},
     "meshgen.yaml:1:36: error: promotion.order: unknown environment 'prod-eux' (hint: did you mean 'prod-eu'?)"),
    ("promotion: {order: [dev, [prod-eu, prod-us]], onFailure: rollback}\n", "", {"books": TIME_ROLLOUT},
     "meshgen.yaml:1:58: error: promotion.onFailure: 'rollback' is not one of 'stop', 'rollback-wave'"),
    ("bot: {name: meshgen-bot}\n", "  promotion: {timeZone: Europe/Berlinn}\n", {"books": TIME_ROLLOUT},
     "environments/prod-eu.yaml:7:25: error: spec.promotion.timeZone: 'Europe/Berlinn' is not an IANA time zone "
     "like Europe/Berlin or UTC"),
    ("bot: {name: meshgen-bot}\n", "  promotion: {freeze: [{from: 2026-12-20, to: 2026-12-19}]}\n",
     {"books": TIME_ROLLOUT},
     "error: spec.promotion.freeze[0].to: the freeze ends (2026-12-19T00:00:00Z) before it starts "
     "(2026-12-20T00:00:00Z)"),
    ("bot: {name: meshgen-bot}\n", "",
     {"books": dict(TIME_ROLLOUT, group="shop"), "reviews": dict(TIME_ROLLOUT, group="shop", steps=[20, 100])},
     "apps/reviews.yaml:12:74: error: rollout.group 'shop': steps [20, 100] differ from books's [50, 100]; the "
     "members of a group step together (hint: give every app of group 'shop' the same steps and interval)\n1 error"),
])
def test_bad_waves_groups_and_windows_are_refused_with_their_place(tmp_path, settings_text, env_extra, apps,
                                                                    expected):
    root = tree(tmp_path, settings_text, {"dev": env_file("dev"), "prod-eu": env_file("prod-eu", extra=env_extra),
                                          "prod-us": env_file("prod-us")}, apps)
    proc = run_meshgen("check", cwd=root)
    assert proc.returncode == 1
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# --- the bot on real git ---------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pushed(tmp_path: Path, git_remote, settings_text: str, envs: dict[str, str], apps: dict[str, dict],
           namespace: str = "mesh") -> tuple[Path, Path]:
    root = tree(tmp_path / "bot", settings_text, envs, apps, namespace)
    output.write_rendering(root, render.render_repo(root))
    return git_remote(root)


def remote_status(remote: Path, env: str, app: str = "books") -> dict | None:
    try:
        return yaml.safe_load(git(remote, "show", f"main:status/{env}/{app}.yaml"))["status"]
    except AssertionError:
        return None


WAVE_ENVS = {name: env_file(name) for name in ("dev", "prod-eu", "prod-us", "after")}


def test_a_wave_starts_together_waits_for_every_member_and_rolls_back_as_one(tmp_path, git_remote):
    remote, work = pushed(tmp_path, git_remote,
                          "promotion: {order: [dev, [prod-eu, prod-us], after], onFailure: rollback-wave}\n",
                          WAVE_ENVS, {"books": TIME_ROLLOUT})
    clock = Clock()

    def tick(seconds: float) -> list[str]:
        clock.now += timedelta(seconds=seconds)
        return [o.line() for o in bot.tick(work, push=True, clock=clock).commits]

    assert tick(0) == ["dev/books: new rollout v1 -> v2: canary v2 at 50 %"]
    assert tick(3600) == ["dev/books: step v2 50 % -> 100 %"]
    assert tick(3600) == ["dev/books: rollout of v2 succeeded at 100 %"]
    assert tick(1) == [
        "prod-eu/books: new rollout v1 -> v2 (v2 succeeded in dev at 2026-12-07T11:00:00Z): canary v2 at 50 %",
        "prod-us/books: new rollout v1 -> v2 (v2 succeeded in dev at 2026-12-07T11:00:00Z): canary v2 at 50 %"]
    # one member done early (by hand): the next wave still waits for the other
    bot.steer(work, "promote", "books", envs=["prod-eu"], push=True, clock=clock)
    report = bot.tick(work, push=True, clock=clock)
    assert [o.line() for o in report.outcomes if o.env == "after"] == [
        "after/books: v1 -> v2 waits: prod-us has not succeeded with v1 -> v2 yet (Progressing at 50 %)"]
    view = run_meshgen("rollout", "status", cwd=work).stdout
    assert "books v1 -> v2: dev \u2713 100 % \u2192 [prod-eu \u2713 100 % | prod-us 50 %] \u2192 after waiting for " \
           "prod-eu and prod-us" in view
    # a rollback in one member rolls back the rest of its wave (by a commit) and stops the pipeline
    assert tick(3600) == ["prod-us/books: step v2 50 % -> 100 %"]
    bot.steer(work, "abort", "books", envs=["prod-us"], push=True, clock=clock)
    assert "promotion of v2 stops here: after will not start it" in git(remote, "log", "-1", "--format=%B", "main")
    assert tick(60) == []  # prod-eu succeeded already: nothing of its wave is on the canary
    assert [o.line() for o in bot.tick(work, push=True, clock=clock).outcomes if o.env == "after"] == [
        "after/books: v1 -> v2 waits: prod-us rolled back v1 -> v2: the pipeline stops there"]


def test_rollback_wave_rolls_back_the_other_members_in_the_same_tick(tmp_path, git_remote):
    remote, work = pushed(tmp_path, git_remote,
                          "promotion: {order: [dev, [prod-eu, prod-us], after], onFailure: rollback-wave}\n",
                          WAVE_ENVS, {"books": dict(TIME_ROLLOUT, steps=[100])})
    clock = Clock()
    bot.tick(work, push=True, clock=clock)
    clock.now += timedelta(hours=1)
    bot.tick(work, push=True, clock=clock)
    clock.now += timedelta(seconds=1)
    assert [o.env for o in bot.tick(work, push=True, clock=clock).commits] == ["prod-eu", "prod-us"]
    bot.steer(work, "abort", "books", envs=["prod-eu"], push=True, clock=clock)
    clock.now += timedelta(seconds=10)
    assert [o.line() for o in bot.tick(work, push=True, clock=clock).commits] == [
        "prod-us/books: rollback v2 from 100 % to 0 % with its wave: prod-eu rolled back v1 -> v2 and "
        "promotion.onFailure is rollback-wave; promotion of v2 stops here: after will not start it"]
    assert git(remote, "log", "-1", "--format=%s", "main").strip() == \
        "rollout books (prod-us): rollback canary v2, 100 % -> 0 %"
    assert remote_status(remote, "prod-us")["phase"] == "RolledBack"
    view = run_meshgen("rollout", "status", cwd=work).stdout
    assert "[prod-eu \u2717 rolled back | prod-us \u2717 rolled back] \u2192 after stopped (prod-eu and prod-us " \
           "rolled back)" in view


FROZEN = """\
  promotion:
    timeZone: Europe/Berlin
    windows: [{days: [Mon, Tue, Wed, Thu], from: "09:00", to: "16:00"}]
    freeze: [{from: 2026-12-19, to: 2027-01-04, reason: year end}]
"""


def test_a_closed_environment_starts_and_steps_nothing_and_says_when_it_opens(tmp_path, git_remote):
    remote, work = pushed(tmp_path, git_remote, "bot: {name: meshgen-bot}\n",
                          {"prod": env_file("prod", extra=FROZEN)}, {"books": TIME_ROLLOUT})
    clock = Clock(datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc))  # in the freeze, on a Monday
    report = bot.tick(work, push=True, clock=clock)
    assert not report.commits
    assert [o.line() for o in report.outcomes] == [
        "prod/books: v1 -> v2 waits: prod is frozen until 2027-01-03T23:00:00Z (year end); next window opens at "
        "2027-01-04T08:00:00Z"]
    assert {env: state.reason for env, state in bot.read_windows(work, clock=clock).items()} == {
        "prod": "frozen until 2027-01-03T23:00:00Z (year end); next window opens at 2027-01-04T08:00:00Z"}
    clock.now = datetime(2027, 1, 4, 8, 0, tzinfo=timezone.utc)  # the window opens
    assert [o.line() for o in bot.tick(work, push=True, clock=clock).commits] == [
        "prod/books: new rollout v1 -> v2: canary v2 at 50 %"]
    clock.now = datetime(2027, 1, 4, 15, 30, tzinfo=timezone.utc)  # 16:30 in Berlin: the window has closed
    report = bot.tick(work, push=True, clock=clock)
    assert not report.commits
    assert [o.line() for o in report.outcomes] == [
        "prod/books: hold at 50 %: prod is outside the promotion window (Mon,Tue,Wed,Thu 09:00-16:00 Europe/Berlin); "
        "next window opens at 2027-01-05T08:00:00Z (the check passed)"]
    # rollbacks always happen, by hand too
    bot.steer(work, "abort", "books", envs=["prod"], push=True, clock=clock)
    assert remote_status(remote, "prod")["phase"] == "RolledBack"


def test_rollout_status_shows_a_frozen_environment_and_its_wave(tmp_path, git_remote):
    frozen = "  promotion: {freeze: [{from: 2000-01-01, to: 2100-01-01, reason: migration}]}\n"
    remote, work = pushed(tmp_path, git_remote, "promotion: {order: [dev, [prod-eu, prod-us]]}\n",
                          {"dev": env_file("dev"), "prod-eu": env_file("prod-eu", extra=frozen),
                           "prod-us": env_file("prod-us")}, {"books": TIME_ROLLOUT})
    proc = run_meshgen("rollout", "status", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "books v1 -> v2: dev no canary" not in proc.stdout
    assert "\u2192 [prod-eu waiting for dev (frozen until 2100-01-01T00:00:00Z) | prod-us waiting for dev]" \
        in proc.stdout, proc.stdout
    assert "prod-eu: frozen until 2100-01-01T00:00:00Z (migration); next window opens at 2100-01-01T00:00:00Z; " \
           "nothing starts, steps or is promoted there, rollbacks still happen" in proc.stdout


# --- a group's checks ask a real Prometheus ---------------------------------------------------

INTERVAL = 3  # seconds: the analysis window holds at least two 1 s scrapes


def group_repo(tmp_path: Path, git_remote, prometheus, namespace: str) -> tuple[Path, Path]:
    block = {"stable": "v1", "canary": "v2", "route": "default", "steps": [20, 100], "interval": f"{INTERVAL}s",
             "group": "shop", "analysis": {"minRequests": 20, "failureLimit": 2}}
    return pushed(tmp_path, git_remote, "bot: {name: meshgen-bot}\n", {"dev": env_file("dev", prometheus.url)},
                  {"books": block, "reviews": block}, namespace)


def bot_log(remote: Path) -> list[str]:
    """The bot's commits that move weights (those recording a weight seen applied left out)."""
    return [s for s in reversed(git(remote, "log", "--format=%s", "main").splitlines())
            if s.startswith("rollout ") and not s.endswith(" seen applied")]


@pytest.fixture
def follow(mesh_traffic):
    """``follow(remote, namespace)``: a fake mesh serving books' and reviews' requests split by
    the weights the remote commits in dev, applied at once."""
    meshes: list[FakeMesh] = []

    def make(remote: Path, namespace: str) -> None:
        meshes.append(FakeMesh(mesh_traffic, remote))
        for app in ("books", "reviews"):
            meshes[-1].follow("dev", app, namespace, app, "v1", "v2", 80)

    yield make
    for mesh in meshes:
        mesh.close()


def tick_until(work: Path, done, timeout: float = 60.0) -> None:
    def once():
        return done(bot.tick(work, push=True))
    wait_until(once, timeout, interval=0.4, what="the group to move on")


def group_weights(remote: Path, namespace: str) -> list[set[int]]:
    """The canary weights of the group's members in each of the bot's commits."""
    found = []
    for sha in git(remote, "log", "--format=%H", "--author=meshgen-bot", "main").split():
        weights = set()
        for app in ("books", "reviews"):
            vs = yaml.safe_load(git(remote, "show", f"{sha}:rendered/dev/{namespace}/{app}/virtualservice.yaml"))
            weights.add(sum(d.get("weight", 100) for d in vs["spec"]["http"][-1]["route"]
                            if d["destination"]["subset"] == "v2"))
        found.append(weights)
    return found


@pytest.mark.prometheus
def test_a_group_steps_together_in_one_commit_per_tick(tmp_path, git_remote, prometheus, mesh_traffic, follow):
    for app in ("books", "reviews"):
        for version in ("v1", "v2"):
            mesh_traffic.set("grp-ok", app, version, error_ratio=0.0, latency_ms=20)
    remote, work = group_repo(tmp_path, git_remote, prometheus, "grp-ok")
    follow(remote, "grp-ok")
    tick_until(work, lambda r: any(o.decision.action is Action.SUCCEED for o in r.commits))
    assert bot_log(remote) == [
        "rollout group shop (dev): start books v2, reviews v2, 0 % -> 20 %",
        "rollout group shop (dev): step books v2, reviews v2, 20 % -> 100 %",
        "rollout group shop (dev): canaries books v2, reviews v2 succeeded at 100 %",
    ]
    step = git(remote, "log", "-1", "--format=%B", "--name-only", "--grep=20 % -> 100 %", "main")
    for path in ("status/dev/books.yaml", "status/dev/reviews.yaml", "rendered/dev/grp-ok/books/virtualservice.yaml",
                 "rendered/dev/grp-ok/reviews/virtualservice.yaml"):
        assert path in step
    assert all(len(weights) == 1 for weights in group_weights(remote, "grp-ok"))
    assert remote_status(remote, "dev", "reviews")["group"] == "shop"
    timeline = run_meshgen("rollout", "history", "reviews", cwd=work).stdout
    assert timeline.startswith("reviews (dev, group shop): v1 -> v2, Succeeded at 100 %")
    site = tmp_path / "site"
    proc = run_meshgen("report", "--out", str(site), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert 'reviews</a> <span class="muted">(group shop)</span>' in (site / "index.html").read_text()


@pytest.mark.prometheus
def test_a_failing_member_holds_the_group_and_rolls_it_back_in_one_commit(tmp_path, git_remote, prometheus,
                                                                          mesh_traffic, follow):
    for app, errors in (("books", 0.0), ("reviews", 0.5)):
        mesh_traffic.set("grp-bad", app, "v1", error_ratio=0.0, latency_ms=20)
        mesh_traffic.set("grp-bad", app, "v2", error_ratio=errors, latency_ms=20)
    remote, work = group_repo(tmp_path, git_remote, prometheus, "grp-bad")
    follow(remote, "grp-bad")
    tick_until(work, lambda r: any(o.decision.action is Action.ROLLBACK for o in r.commits))
    log = bot_log(remote)
    assert log[0] == "rollout group shop (dev): start books v2, reviews v2, 0 % -> 20 %"
    assert log[1].startswith("rollout reviews (dev): failed check 1 of 2, canary v2 stays at 20 %")
    assert log[2] == "rollout group shop (dev): rollback books v2, reviews v2, 20 % -> 0 %" and len(log) == 3
    body = git(remote, "log", "-1", "--format=%B", "main")
    assert "rollback v2 from 20 % to 0 % with group shop: reviews rolled back" in body
    assert all(len(weights) == 1 for weights in group_weights(remote, "grp-bad"))
    assert {remote_status(remote, "dev", app)["phase"] for app in ("books", "reviews")} == {"RolledBack"}


def test_by_hand_the_next_wave_reads_every_member(tmp_path, git_remote):
    remote, work = pushed(tmp_path, git_remote, "promotion: {order: [[prod-eu, prod-us], after], approval: [after]}\n",
                          WAVE_ENVS, {"books": dict(TIME_ROLLOUT, steps=[100])})
    clock = Clock()
    bot.tick(work, push=True, clock=clock)
    clock.now += timedelta(hours=1)
    assert [(o.env, o.decision.action) for o in bot.tick(work, push=True, clock=clock).commits
            if o.env != "dev"] == [("prod-eu", Action.SUCCEED), ("prod-us", Action.SUCCEED)]
    report = bot.approve(work, "books", "after", push=True, clock=clock)
    assert "it still waits" not in report.outcomes[0].decision.reason  # both members of the wave succeeded
    clock.now += timedelta(seconds=1)
    made = bot.steer(work, "promote", "books", envs=["after"], push=True, clock=clock)
    assert [o.decision.action for o in made.outcomes] == [Action.PROMOTE]


def test_a_group_is_steered_by_hand_as_one_commit(tmp_path, git_remote):
    block = dict(TIME_ROLLOUT, group="shop")
    remote, work = pushed(tmp_path, git_remote, "bot: {name: meshgen-bot}\n", {"dev": env_file("dev")},
                          {"books": block, "reviews": block, "ratings": TIME_ROLLOUT})
    clock = Clock()
    assert [o.line() for o in bot.tick(work, push=True, clock=clock, apps=["books", "reviews"]).commits] == [
        "dev/books: new rollout v1 -> v2: canary v2 at 50 %", "dev/reviews: new rollout v1 -> v2: canary v2 at 50 %"]
    made = bot.steer(work, "abort", "books", push=True, clock=clock)
    assert [(o.app, o.decision.action) for o in made.commits] == [("books", Action.ABORT), ("reviews", Action.ABORT)]
    assert git(remote, "log", "-1", "--format=%s", "main").strip() == \
        "rollout group shop (dev): rollback books v2, reviews v2, 50 % -> 0 %"
    assert git(remote, "diff", "--name-only", "main~1", "main").split() == [
        "rendered/dev/mesh/books/virtualservice.yaml", "rendered/dev/mesh/reviews/virtualservice.yaml",
        "status/dev/books.yaml", "status/dev/reviews.yaml"]
    clock.now += timedelta(minutes=1)
    made = bot.steer(work, "resume", "reviews", push=True, clock=clock)  # a restart: the whole group again
    assert [(o.app, o.decision.action) for o in made.commits] == [("reviews", Action.RESUME), ("books", Action.RESUME)]
    clock.now += timedelta(hours=1)
    report = bot.tick(work, push=True, clock=clock, apps=["books", "reviews"])
    assert len({o.committed for o in report.commits}) == 1  # one commit for the group's step
    assert {remote_status(remote, "dev", app)["canaryWeight"] for app in ("books", "reviews")} == {100}
