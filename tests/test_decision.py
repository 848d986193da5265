"""The rollout decision (DESIGN §6): every transition from a table, invariants by hypothesis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.rollout import decision
from generator.rollout.decision import Action, Check, Rollout, Verdict

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
SPEC = {"stable": "v1", "canary": "v2", "route": "default", "steps": [10, 50, 100], "interval": "1m",
        "analysis": {"failureLimit": 2}}
PASS = Check(Verdict.PASS, {"request-success-rate": 1.0}, "all metrics within bounds")
FAIL = Check(Verdict.FAIL, {"request-success-rate": 0.5}, "request-success-rate 0.5 < min 0.99")
NODATA = Check(Verdict.INCONCLUSIVE, {"requests": None}, "no requests to v2 in the last 60s")


def status(phase="Progressing", weight=10, index=0, failed=0, step_at=T0, stable="v1", canary="v2",
           last_check=None):
    st_ = {"phase": phase, "stable": stable, "canary": canary, "canaryWeight": weight, "stepIndex": index,
           "failedChecks": failed, "lastStepTime": decision.format_time(step_at)}
    if last_check:
        st_["lastCheck"] = last_check
    return st_


LATER = T0 + timedelta(seconds=60)
SOON = T0 + timedelta(seconds=59)

# (name, spec overrides, status, check, now, action, expected status fields)
TRANSITIONS = [
    ("no status starts at steps[0]", {}, None, None, T0, Action.START,
     {"phase": "Progressing", "canaryWeight": 10, "stepIndex": 0, "failedChecks": 0}),
    ("another pair restarts", {"canary": "v3"}, status(weight=50, index=1), None, T0, Action.START,
     {"canary": "v3", "canaryWeight": 10, "stepIndex": 0}),
    ("a new pair after success starts", {"stable": "v2", "canary": "v3"},
     status("Succeeded", 100, 2), None, T0, Action.START, {"stable": "v2", "canary": "v3", "canaryWeight": 10}),
    ("stable equals canary: nothing", {"canary": "v1"}, None, None, T0, Action.NOTHING, {}),
    ("inside the interval: nothing", {}, status(), None, SOON, Action.NOTHING, {"canaryWeight": 10}),
    ("pass steps up by one", {}, status(), PASS, LATER, Action.STEP,
     {"canaryWeight": 50, "stepIndex": 1, "lastStepTime": "2026-11-21T10:01:00Z"}),
    ("pass resets failed checks", {}, status(failed=1), PASS, LATER, Action.STEP,
     {"canaryWeight": 50, "failedChecks": 0}),
    ("pass at 100 succeeds", {}, status(weight=100, index=2), PASS, LATER, Action.SUCCEED,
     {"phase": "Succeeded", "canaryWeight": 100}),
    ("inconclusive holds", {}, status(), NODATA, LATER, Action.HOLD,
     {"canaryWeight": 10, "failedChecks": 0, "phase": "Progressing"}),
    ("no check result when due holds", {}, status(), None, LATER, Action.HOLD, {"canaryWeight": 10}),
    ("fail below the limit counts", {}, status(), FAIL, LATER, Action.FAIL_COUNT,
     {"canaryWeight": 10, "failedChecks": 1, "phase": "Progressing"}),
    ("fail at the limit rolls back", {}, status(weight=50, index=1, failed=1,
                                                last_check={"time": "2026-11-21T10:00:00Z", "verdict": "fail"}),
     FAIL, LATER, Action.ROLLBACK, {"phase": "RolledBack", "canaryWeight": 0, "stepIndex": -1, "failedChecks": 2}),
    ("failureLimit 1 rolls back at once", {"analysis": {"failureLimit": 1}}, status(), FAIL, LATER,
     Action.ROLLBACK, {"phase": "RolledBack", "canaryWeight": 0}),
    ("a failed check waits an interval before the next", {},
     status(failed=1, last_check={"time": "2026-11-21T10:00:30Z", "verdict": "fail"}),
     FAIL, LATER, Action.NOTHING, {"failedChecks": 1}),
    ("paused: nothing", {}, status("Paused"), PASS, LATER, Action.NOTHING, {"phase": "Paused"}),
    ("succeeded: nothing", {}, status("Succeeded", 100, 2), PASS, LATER, Action.NOTHING, {"canaryWeight": 100}),
    ("rolled back: nothing", {}, status("RolledBack", 0, -1), PASS, LATER, Action.NOTHING, {"canaryWeight": 0}),
    ("steps edited mid-rollout stay on the grid", {"steps": [5, 25, 75, 100]}, status(weight=10), PASS, LATER,
     Action.STEP, {"canaryWeight": 25, "stepIndex": 1}),
]


@pytest.mark.parametrize("name,overrides,old,check,now,action,fields", TRANSITIONS, ids=[t[0] for t in TRANSITIONS])
def test_transition(name, overrides, old, check, now, action, fields):
    before = None if old is None else dict(old)
    result = decision.decide({**SPEC, **overrides}, "prod", old, check, now)
    assert result.action is action, result.reason
    for key, value in fields.items():
        assert result.status[key] == value, key
    assert old == before, "decide must not modify its input"


def test_step_records_the_check_and_its_values():
    result = decision.decide(SPEC, "prod", status(), PASS, LATER)
    assert result.status["lastCheck"] == {"time": "2026-11-21T10:01:00Z", "verdict": "pass",
                                          "reason": "all metrics within bounds",
                                          "metrics": {"request-success-rate": 1.0}}
    assert "10 % -> 50 %" in result.reason and "request-success-rate=1" in result.reason


def test_rollback_reason_says_rollback_and_why():
    old = status(failed=1, last_check={"time": "2026-11-21T09:59:00Z", "verdict": "fail"})
    result = decision.decide(SPEC, "prod", old, FAIL, LATER)
    assert result.reason.startswith("rollback v2 from 10 % to 0 % after 2 failed checks")
    assert "request-success-rate 0.5 < min 0.99" in result.reason


def test_repeated_holds_are_reported():
    result = decision.decide(SPEC, "prod", status(), NODATA, T0 + timedelta(minutes=3))
    assert result.action is Action.HOLD
    assert "no promotion for 3 intervals" in result.reason


@pytest.mark.parametrize("old,due", [
    (status(), False),
    (status(step_at=T0 - timedelta(seconds=60)), True),
    (status("Paused", step_at=T0 - timedelta(hours=1)), False),
    (status(stable="v0", step_at=T0 - timedelta(hours=1)), False),
    (None, False),
])
def test_check_due(old, due):
    assert decision.check_due(SPEC, old, T0) is due


# --- steering by hand ---------------------------------------------------------------------

MANUAL = [
    ("pause a progressing rollout", decision.pause, status(), Action.PAUSE, {"phase": "Paused", "canaryWeight": 10}),
    ("pause a finished one: nothing", decision.pause, status("Succeeded", 100, 2), Action.NOTHING, {}),
    ("resume a paused one", decision.resume, status("Paused", 50, 1), Action.RESUME,
     {"phase": "Progressing", "canaryWeight": 50, "lastStepTime": "2026-11-21T10:01:00Z"}),
    ("resume a rolled-back one restarts", decision.resume, status("RolledBack", 0, -1), Action.RESUME,
     {"phase": "Progressing", "canaryWeight": 10, "stepIndex": 0}),
    ("resume a progressing one: nothing", decision.resume, status(), Action.NOTHING, {}),
    ("abort rolls back now", decision.abort, status(weight=50, index=1), Action.ABORT,
     {"phase": "RolledBack", "canaryWeight": 0, "stepIndex": -1}),
    ("abort a paused one", decision.abort, status("Paused"), Action.ABORT, {"phase": "RolledBack"}),
    ("abort without a rollout: nothing", decision.abort, None, Action.NOTHING, {}),
    ("promote goes to 100 now", decision.promote, status(), Action.PROMOTE,
     {"phase": "Succeeded", "canaryWeight": 100, "stepIndex": 2}),
    ("promote before the first tick", decision.promote, None, Action.PROMOTE, {"canaryWeight": 100}),
    ("promote a succeeded one: nothing", decision.promote, status("Succeeded", 100, 2), Action.NOTHING, {}),
]


@pytest.mark.parametrize("name,command,old,action,fields", MANUAL, ids=[m[0] for m in MANUAL])
def test_manual(name, command, old, action, fields):
    result = command(SPEC, old, LATER)
    assert result.action is action, result.reason
    for key, value in fields.items():
        assert result.status[key] == value, key


# --- small pure functions -----------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("2s", 2), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert decision.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "1x", "m1", "1m 2s"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        decision.parse_duration(text)


@pytest.mark.parametrize("steps", [[], [10, 10, 100], [50, 20, 100], [10, 90], [0, 100], [10, 101]])
def test_steps_refused(steps):
    with pytest.raises(ValueError):
        Rollout.from_spec({**SPEC, "steps": steps})


def test_defaults_from_schema():
    rollout = Rollout.from_spec({"stable": "v1", "canary": "v2", "route": "default"})
    assert rollout.steps == (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    assert (rollout.interval, rollout.policy, rollout.min_requests, rollout.failure_limit) == (60, "health", 100, 2)


@pytest.mark.parametrize("weight,split", [(0, {"v1": 100}), (30, {"v1": 70, "v2": 30}), (100, {"v2": 100})])
def test_route_split(weight, split):
    assert decision.route_split("v1", "v2", weight) == split


def test_next_step():
    assert decision.next_step([10, 50, 100], 0) == (0, 10)
    assert decision.next_step([10, 50, 100], 10) == (1, 50)
    assert decision.next_step([10, 50, 100], 30) == (1, 50)
    assert decision.next_step([10, 50, 100], 100) is None


def test_committed_change_ignores_last_check():
    old = status()
    assert not decision.committed_change(old, {**old, "lastCheck": {"time": "x", "verdict": "inconclusive"}})
    assert decision.committed_change(old, {**old, "failedChecks": 1})
    assert decision.committed_change(None, old)


# --- invariants ---------------------------------------------------------------------------

steps_strategy = st.lists(st.integers(1, 99), max_size=8, unique=True).map(lambda s: sorted(s) + [100])
verdicts = st.sampled_from(list(Verdict))
checks = st.one_of(st.none(), verdicts.map(lambda v: Check(v, {}, v.value)))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(steps=steps_strategy, failure_limit=st.integers(1, 4),
       ticks=st.lists(st.tuples(st.integers(0, 120), checks), min_size=1, max_size=40))
def test_invariants_over_any_sequence_of_ticks(steps, failure_limit, ticks):
    spec = {**SPEC, "steps": steps, "analysis": {"failureLimit": failure_limit}}
    now, current = T0, None
    for seconds, check in ticks:
        now += timedelta(seconds=seconds)
        due = decision.check_due(spec, current, now)
        result = decision.decide(spec, "prod", current, check if due else None, now)
        new = result.status
        weight = new["canaryWeight"]
        # the canary weight only takes values from steps or 0
        assert weight in steps or weight == 0
        # weights always sum to 100
        assert sum(decision.route_split("v1", "v2", weight).values()) == 100
        if current is not None:
            old_index = steps.index(current["canaryWeight"]) if current["canaryWeight"] else -1
            new_index = steps.index(weight) if weight else -1
            # never more than one step up per tick
            assert new_index <= old_index + 1
            if new_index > old_index:
                # no data never promotes
                assert check is not None and check.verdict is Verdict.PASS and due
        if result.action is Action.ROLLBACK:
            # a rollback always leads to 0 % canary
            assert weight == 0 and new["phase"] == "RolledBack"
        if weight < (current or {}).get("canaryWeight", 0):
            assert result.action is Action.ROLLBACK
        current = new


@settings(derandomize=True, max_examples=200, deadline=None)
@given(steps=steps_strategy, weight_index=st.integers(0, 8), check=checks)
def test_no_data_never_promotes(steps, weight_index, check):
    index = min(weight_index, len(steps) - 1)
    old = status(weight=steps[index], index=index)
    result = decision.decide({**SPEC, "steps": steps}, "prod", old, check, LATER)
    if check is None or check.verdict is not Verdict.PASS:
        assert result.status["canaryWeight"] <= old["canaryWeight"]
        assert result.status.get("phase") != "Succeeded"
