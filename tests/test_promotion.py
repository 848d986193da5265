"""Promotion across environments: the pipeline gate (pure, by table and by hypothesis), its
checks in meshgen.yaml, and the bot and ``meshgen rollout approve/status`` on real git.

The property test plays a world of three environments, a remote that takes only fast-forward
pushes, several bots ticking any subset of environments from snapshots that may be stale,
humans approving, aborting, resuming, promoting and changing the canary, and a clock that
jumps; it checks every commit against the history: no environment ever starts a pair before
the environment before it succeeded with that pair at least ``soak`` ago.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.bot import bot
from generator.render import output, render
from generator.rollout import decision, promotion
from generator.rollout.decision import Action, Check, Verdict
from generator.rollout.promotion import Pipeline, Waiting
from tests.conftest import build_file_tree, run_meshgen
from tests.promfixtures import clone, git

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
PIPE = Pipeline(order=("dev", "staging", "prod"), soak=1800, soak_text="30m", approval=frozenset({"prod"}))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def status(phase="Progressing", weight=50, stable="v1", canary="v2", **extra):
    st_ = {"phase": phase, "stable": stable, "canary": canary, "canaryWeight": weight,
           "stepIndex": 0 if weight else -1, "failedChecks": 0, "lastStepTime": decision.format_time(T0)}
    st_.update(extra)
    return st_


SUCCEEDED = status("Succeeded", 100, lastSucceeded={"stable": "v1", "canary": "v2", "time": "2026-11-21T10:00:00Z"})
APPROVED = status("Waiting", 0, approval={"by": "Ada <ada@example.com>", "time": "2026-11-21T09:00:00Z"})

# (name, env, previous status, own status, seconds after T0, open, waiting)
ADMISSIONS = [
    ("the first environment never waits", "dev", None, None, 0, True, ()),
    ("nothing in the previous environment", "staging", None, None, 0, False, (Waiting.PREDECESSOR,)),
    ("the previous environment is still rolling out", "staging", status(), None, 9999, False, (Waiting.PREDECESSOR,)),
    ("the previous environment has another pair", "staging", status(canary="v3"), None, 9999, False,
     (Waiting.PREDECESSOR,)),
    ("succeeded, soak not over", "staging", SUCCEEDED, None, 1799, False, (Waiting.SOAK,)),
    ("succeeded, soak over", "staging", SUCCEEDED, None, 1800, True, ()),
    ("rolled back: the pipeline stops", "staging", status("RolledBack", 0), None, 9999, False, (Waiting.STOPPED,)),
    ("moved on to another pair, the success is remembered", "staging",
     status(canary="v3", lastSucceeded={"stable": "v1", "canary": "v2", "time": "2026-11-21T10:00:00Z"}), None,
     1800, True, ()),
    ("a success without its record counts from its last check", "staging",
     status("Succeeded", 100, lastCheck={"time": "2026-11-21T10:10:00Z", "verdict": "pass"}), None, 1800 + 599,
     False, (Waiting.SOAK,)),
    ("rolled out again after a success: waits again", "staging",
     status(lastSucceeded={"stable": "v1", "canary": "v2", "time": "2026-11-21T09:00:00Z"}), None, 9999, False,
     (Waiting.PREDECESSOR,)),
    ("approval needed and missing", "prod", SUCCEEDED, None, 1800, False, (Waiting.APPROVAL,)),
    ("approval needed and given", "prod", SUCCEEDED, APPROVED, 1800, True, ()),
    ("approval for another pair does not count", "prod", SUCCEEDED, status("Waiting", 0, canary="v3",
                                                                           approval=APPROVED["approval"]),
     1800, False, (Waiting.APPROVAL,)),
    ("approved ahead still waits for the previous one", "prod", status(), APPROVED, 9999, False,
     (Waiting.PREDECESSOR,)),
    ("an environment outside the pipeline never waits", "sandbox", None, None, 0, True, ()),
]


@pytest.mark.parametrize("name,env,previous,own,seconds,open_,waiting", ADMISSIONS, ids=[a[0] for a in ADMISSIONS])
def test_admission(name, env, previous, own, seconds, open_, waiting):
    admission = promotion.admit(PIPE, "books", env, "v1", "v2", previous, own, at(seconds))
    assert admission.open is open_, admission.reason
    assert admission.waiting == waiting
    if not open_:
        assert admission.reason


def test_admission_reasons_say_what_to_do():
    waiting = promotion.admit(PIPE, "books", "prod", "v1", "v2", status(), None, T0)
    assert waiting.reason == ("staging has not succeeded with v1 -> v2 yet (Progressing at 50 %); "
                              "needs an approval: meshgen rollout approve books --env prod")
    soaking = promotion.admit(PIPE, "books", "staging", "v1", "v2", SUCCEEDED, None, at(60))
    assert soaking.reason == "v2 succeeded in dev at 2026-11-21T10:00:00Z; soak 30m ends at 2026-11-21T10:30:00Z"
    stopped = promotion.admit(PIPE, "books", "staging", "v1", "v2", status("RolledBack", 0), None, T0)
    assert stopped.reason == "dev rolled back v1 -> v2: the pipeline stops there"


SPEC = {"stable": "v1", "canary": "v2", "route": "default", "steps": [50, 100], "interval": "10s"}


def test_decide_waits_without_a_commit_and_starts_when_admitted():
    closed = promotion.admit(PIPE, "books", "staging", "v1", "v2", None, None, T0)
    waited = decision.decide(SPEC, "staging", None, None, T0, closed)
    assert waited.action is Action.WAIT and waited.status == {}
    assert "waits: dev has not succeeded" in waited.reason
    admitted = promotion.admit(PIPE, "books", "staging", "v1", "v2", SUCCEEDED, None, at(1800))
    started = decision.decide(SPEC, "staging", None, None, at(1800), admitted)
    assert started.action is Action.START and started.status["canaryWeight"] == 50
    assert "v2 succeeded in dev at 2026-11-21T10:00:00Z, soak 30m over" in started.reason


def test_an_approved_pair_starts_with_its_approval_and_keeps_the_last_success():
    own = promotion.approve(status("Succeeded", 100, stable="v0", canary="v1"), "v1", "v2", "Ada <ada@example.com>", T0)
    assert own["phase"] == "Waiting" and own["canaryWeight"] == 0
    assert own["approval"] == {"by": "Ada <ada@example.com>", "time": "2026-11-21T10:00:00Z"}
    assert own["lastSucceeded"]["canary"] == "v1"
    admitted = promotion.admit(PIPE, "books", "prod", "v1", "v2", SUCCEEDED, own, at(1800))
    started = decision.decide(SPEC, "prod", own, None, at(1800), admitted)
    assert started.action is Action.START
    assert started.status["approval"]["by"] == "Ada <ada@example.com>"
    assert started.status["lastSucceeded"] == {"stable": "v0", "canary": "v1", "time": "2026-11-21T10:00:00Z"}
    assert "approved by Ada <ada@example.com>" in started.reason


@pytest.mark.parametrize("own,message", [
    (status(), "has already started: it is Progressing"),
    (status("Succeeded", 100), "has already started: it is Succeeded"),
    (APPROVED, "is already approved, by Ada <ada@example.com>"),
])
def test_approval_with_nothing_waiting_is_refused(own, message):
    with pytest.raises(ValueError, match=message):
        promotion.approve(own, "v1", "v2", "Bob <bob@example.com>", T0)


def test_success_is_recorded_and_rollback_says_the_pipeline_stops():
    done = decision.decide(SPEC, "dev", status(weight=100), Check(Verdict.PASS, {}, "ok"), at(10))
    assert done.action is Action.SUCCEED
    assert done.status["lastSucceeded"] == {"stable": "v1", "canary": "v2", "time": "2026-11-21T10:00:10Z"}
    aborted = promotion.with_stop_note(decision.abort(SPEC, status(), T0), PIPE, "dev")
    assert aborted.reason.endswith("; promotion of v2 stops here: staging and prod will not start it")
    assert aborted.status["message"].endswith("staging and prod will not start it")
    last = promotion.with_stop_note(decision.abort(SPEC, status(), T0), PIPE, "prod")
    assert "promotion" not in last.reason


def test_by_hand_a_start_still_needs_the_previous_environment_but_is_its_own_approval():
    promoted = decision.promote(SPEC, None, T0, promotion.admit(PIPE, "books", "prod", "v1", "v2", status(), None, T0,
                                                                 by_hand=True))
    assert promoted.action is Action.NOTHING and "cannot promote v2: staging has not succeeded" in promoted.reason
    admitted = promotion.admit(PIPE, "books", "prod", "v1", "v2", SUCCEEDED, None, at(1800), by_hand=True)
    assert admitted.open
    assert decision.promote(SPEC, None, at(1800), admitted).action is Action.PROMOTE
    restarted = decision.resume(SPEC, status("RolledBack", 0), T0,
                                promotion.admit(PIPE, "books", "staging", "v1", "v2", None, None, T0, by_hand=True))
    assert restarted.action is Action.NOTHING and restarted.reason.startswith("cannot restart v2")


def test_stages_of_a_pipeline():
    pairs = {"dev": ("v1", "v2"), "staging": ("v1", "v2"), "prod": ("v1", "v2")}
    statuses = {"dev": SUCCEEDED, "staging": status(), "prod": None}
    line = promotion.format_stages("books", promotion.stages(PIPE, "books", pairs, statuses, at(3600)))
    assert line == "books v1 -> v2: dev \u2713 100 % \u2192 staging 50 % \u2192 prod waiting for approval"
    statuses = {"dev": status("RolledBack", 0), "staging": None, "prod": APPROVED}
    line = promotion.format_stages("books", promotion.stages(PIPE, "books", pairs, statuses, at(3600)))
    assert line == ("books v1 -> v2: dev \u2717 rolled back \u2192 staging stopped (dev rolled back) "
                    "\u2192 prod waiting for staging (approved)")
    pairs["dev"] = ("v1", "v3")
    statuses = {"dev": status(canary="v3"), "staging": SUCCEEDED, "prod": None}
    line = promotion.format_stages("books", promotion.stages(PIPE, "books", pairs, statuses, at(60)))
    assert line == ("books v1 -> v2: dev (v1 -> v3) 50 % \u2192 staging \u2713 100 % "
                    "\u2192 prod waiting for approval")


# --- the property: whatever the order of ticks and bots ------------------------------------

ENVS = ("dev", "staging", "prod")
verdicts = st.sampled_from([Verdict.PASS] * 4 + [Verdict.FAIL, Verdict.INCONCLUSIVE])
humans = st.one_of(
    st.none(), st.none(), st.none(), st.none(), st.none(), st.none(),
    st.tuples(st.just("approve"), st.sampled_from(ENVS)),
    st.tuples(st.sampled_from(["abort", "resume", "promote"]), st.sampled_from(ENVS)),
    st.tuples(st.just("canary"), st.sampled_from(["v2", "v3"])),
    st.tuples(st.just("sync"), st.integers(0, 2)),
)
# one round: the clock moves, one of three bots ticks some environments, maybe a human acts
rounds = st.tuples(st.sampled_from([0, 1, 5, 10, 20, 60, 300]), st.integers(0, 2),
                   st.lists(st.sampled_from(ENVS), min_size=1, max_size=3, unique=True),
                   st.fixed_dictionaries({e: verdicts for e in ENVS}), humans)


def _succeeded_by_history(history, env, pair, now):
    """When ``pair`` last became Succeeded in ``env`` and stayed so for that pair, from the
    commits alone (an oracle independent of the status fields the gate reads)."""
    since = None
    for when, where, new in history:
        if where != env or (new.get("stable"), new.get("canary")) != pair:
            continue
        if new.get("phase") == "Succeeded":
            since = since or when
        else:
            since = None
    return since


@settings(derandomize=True, max_examples=250, deadline=None)
@given(soak=st.sampled_from([0, 30, 120]), approval=st.sets(st.sampled_from(ENVS), max_size=1),
       ops=st.lists(rounds, min_size=1, max_size=80))
def test_no_environment_starts_before_its_predecessor_succeeded_and_soaked(soak, approval, ops):
    pipeline = Pipeline(ENVS, soak=soak, soak_text=f"{soak}s", approval=frozenset(approval))
    spec = dict(SPEC)
    remote: list[dict] = [{e: None for e in ENVS}]      # the remote's states, one per commit
    history: list[tuple[datetime, str, dict]] = []       # (time, env, new status) per commit
    snapshots = [0, 0, 0]                                # the commit each bot's checkout stands on
    now = T0

    def commit(env, old, new, by_hand=False):
        base = remote[-1]
        if promotion.not_started(old, spec["stable"], spec["canary"]) and \
                not promotion.not_started(new, spec["stable"], spec["canary"]):
            pair = (spec["stable"], spec["canary"])
            previous = pipeline.previous(env)
            if previous:
                since = _succeeded_by_history(history, previous, pair, now)
                assert since is not None, f"{env} started {pair} before {previous} succeeded with it"
                assert now - since >= timedelta(seconds=soak), f"{env} started {pair} inside the soak"
            if env in approval and not by_hand:
                assert (old or {}).get("approval") and (old or {}).get("phase") == "Waiting"
        remote.append({**base, env: new})
        history.append((now, env, new))

    def admission(state, env, by_hand=False):
        previous = pipeline.previous(env)
        return promotion.admit(pipeline, "books", env, spec["stable"], spec["canary"],
                               state[previous] if previous else None, state[env], now, by_hand=by_hand)

    for seconds, who, envs, verdict, human in ops:
        now += timedelta(seconds=seconds)
        seen = remote[snapshots[who]]
        changes = []
        for env in envs:  # one tick decides every environment from the same checkout
            old = seen[env]
            due = decision.check_due(spec, old, now)
            check = Check(verdict[env], {}, verdict[env].value) if due else None
            made = decision.decide(spec, env, old, check, now, admission(seen, env)
                                   if promotion.not_started(old, spec["stable"], spec["canary"]) else None)
            if made.action is Action.WAIT:
                assert made.status == dict(old or {})
            if made.action not in (Action.NOTHING, Action.WAIT) and decision.committed_change(old, made.status):
                changes.append((env, old, made.status))
        if changes and snapshots[who] == len(remote) - 1:  # a push only fast-forwards
            for env, old, new in changes:
                commit(env, old, new)
        snapshots[who] = len(remote) - 1  # pushed, or rejected: the bot moves onto the head
        if human is None:
            continue
        kind, arg = human
        if kind == "sync":
            snapshots[arg] = len(remote) - 1
        elif kind == "canary":
            spec["canary"] = arg
        elif kind == "approve":
            if arg in approval:
                try:
                    new = promotion.approve(remote[-1][arg], spec["stable"], spec["canary"], "Ada <a@x>", now)
                except ValueError:
                    continue
                commit(arg, remote[-1][arg], new)
        else:
            old = remote[-1][arg]
            if kind == "abort":
                made = decision.abort(spec, old, now)
            else:
                made = getattr(decision, kind)(spec, old, now, admission(remote[-1], arg, by_hand=True))
            if made.action is not Action.NOTHING:
                commit(arg, old, made.status, by_hand=True)


# --- meshgen.yaml and the specs: clear errors ----------------------------------------------

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: books, namespace: mesh}
spec:
  service: {host: books, port: 80}
  versions:
    v1: {labels: {version: v1}}
    v2: {labels: {version: v2}}
  routes:
    - name: default
      to: v1
  rollout: {stable: v1, canary: v2, route: default, steps: [50, 100], interval: 1h, policy: time}
"""


def env_file(name: str, extra: str = "") -> str:
    return (f"apiVersion: meshgen.io/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\n"
            f"spec:\n  cluster: {{name: {name}, server: https://{name}.example.com}}\n"
            f"  prometheus: {{url: http://127.0.0.1:9}}\n{extra}")


def repo_tree(root: Path, settings_text: str, app_text: str = APP, prod_extra: str = "") -> Path:
    return build_file_tree(root, {"meshgen.yaml": settings_text, "apps/books.yaml": app_text,
                                  "environments/dev.yaml": env_file("dev"),
                                  "environments/staging.yaml": env_file("staging"),
                                  "environments/prod.yaml": env_file("prod", prod_extra)})


@pytest.mark.parametrize("settings_text,app_extra,prod_extra,expected", [
    ("promotion: {order: [dev, stagin, prod]}\n", "", "",
     "meshgen.yaml:1:26: error: promotion.order: unknown environment 'stagin' (hint: did you mean 'staging'?)"),
    ("promotion: {order: [dev, staging, dev]}\n", "", "",
     "meshgen.yaml:1:35: error: promotion.order names 'dev' twice (items 1 and 3): a pipeline is a line, so it "
     "would run in a cycle (hint: list each environment once)"),
    ("promotion: {order: [dev, staging], approval: [prod]}\n", "", "",
     "meshgen.yaml:1:47: error: promotion.approval: 'prod' is not in promotion.order (dev, staging) (hint: approval "
     "names environments of the pipeline; add it to order or remove it)"),
    ("promotion: {order: [dev, prod]}\n", "  promotion: {order: [dev, qa]}\n", "",
     "apps/books.yaml:13:28: error: promotion.order: unknown environment 'qa' (hint: known environments: dev, "
     "prod, staging)"),
    ("promotion: {order: [dev, prod]}\n", "", "  apps:\n    books: {spec: {promotion: {soak: 1m}}}\n",
     "environments/prod.yaml:8:20: error: environment 'prod' overrides the promotion pipeline of 'books' (hint: a "
     "pipeline spans environments: set spec.promotion in the app's own file, or promotion in meshgen.yaml)"),
    ("promotion: {order: [dev, prod], soak: 30 minutes}\n", "", "",
     "meshgen.yaml:1:39: error: promotion.soak: '30 minutes' is not a duration"),
])
def test_bad_pipelines_are_refused_with_their_place(tmp_path, settings_text, app_extra, prod_extra, expected):
    root = repo_tree(tmp_path, settings_text, APP + app_extra, prod_extra)
    proc = run_meshgen("check", cwd=root)
    assert proc.returncode == 1
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# --- the bot and the commands on real git ----------------------------------------------------


def pushed_repo(tmp_path: Path, git_remote, settings_text: str) -> tuple[Path, Path]:
    tree = repo_tree(tmp_path / "bot", settings_text)
    output.write_rendering(tree, render.render_repo(tree))
    return git_remote(tree)


def remote_status(remote: Path, env: str) -> dict | None:
    try:
        return yaml.safe_load(git(remote, "show", f"main:status/{env}/books.yaml"))["status"]
    except AssertionError:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_pair_goes_through_the_pipeline_by_commits(tmp_path, git_remote):
    remote, work = pushed_repo(tmp_path, git_remote,
                               "promotion: {order: [dev, staging, prod], soak: 30m, approval: [prod]}\n")
    human = clone(remote, tmp_path / "human")
    clock = Clock()

    def tick(seconds: float) -> list[str]:
        clock.now += timedelta(seconds=seconds)
        report = bot.tick(work, push=True, clock=clock)
        return [o.line() for o in report.commits]

    assert tick(0) == ["dev/books: new rollout v1 -> v2: canary v2 at 50 %"]
    assert tick(3600) == ["dev/books: step v2 50 % -> 100 %"]
    # prod is approved ahead, by a human, from another clone: the approval is a commit by its author
    ada = {"GIT_AUTHOR_NAME": "Ada Platform", "GIT_AUTHOR_EMAIL": "ada@example.com"}
    proc = run_meshgen("rollout", "approve", "books", "--env", "prod", "--push", cwd=human, env=ada)
    assert proc.returncode == 0, proc.stderr
    assert "prod/books: v1 -> v2 approved by Ada Platform <ada@example.com>; it still waits: staging has not " \
           "succeeded with v1 -> v2 yet (not started)" in proc.stdout
    assert git(remote, "log", "-1", "--format=%an <%ae>|%s", "main").strip() == \
        "Ada Platform <ada@example.com>|rollout books (prod): approve canary v2 (v1 -> v2)"
    assert git(remote, "diff", "--name-only", "main~1", "main").split() == ["status/prod/books.yaml"]
    assert remote_status(remote, "prod")["approval"]["by"] == "Ada Platform <ada@example.com>"
    # a second approval: nothing waits for one (exit 1)
    again = run_meshgen("rollout", "approve", "books", "--env", "prod", cwd=human, env=ada)
    assert again.returncode == 1 and "nothing waits for approval: books in prod: v1 -> v2 is already approved, " \
        "by Ada Platform <ada@example.com>" in again.stderr
    assert tick(3600) == ["dev/books: rollout of v2 succeeded at 100 %"]
    assert tick(1799) == []  # staging soaks
    [(app, _, stages)] = bot.read_pipelines(work, clock=clock)
    assert promotion.format_stages(app, stages) == ("books v1 -> v2: dev \u2713 100 % \u2192 staging soaking until "
                                                    "2026-11-21T12:30:00Z \u2192 prod waiting for staging (approved)")
    assert tick(1) == ["staging/books: new rollout v1 -> v2 (v2 succeeded in dev at 2026-11-21T12:00:00Z, soak 30m "
                       "over): canary v2 at 50 %"]
    assert tick(3600) == ["staging/books: step v2 50 % -> 100 %"]
    assert tick(3600) == ["staging/books: rollout of v2 succeeded at 100 %"]
    assert tick(1800) == ["prod/books: new rollout v1 -> v2 (v2 succeeded in staging at 2026-11-21T14:30:00Z, "
                          "soak 30m over; approved by Ada Platform <ada@example.com>): canary v2 at 50 %"]
    assert remote_status(remote, "prod")["approval"]["by"] == "Ada Platform <ada@example.com>"
    # the history of prod: one timeline, the approval by its author, then the bot's start
    timeline = run_meshgen("rollout", "history", "books", "--env", "prod", cwd=work).stdout.splitlines()
    assert timeline[0].startswith("books (prod): v1 -> v2, Progressing at 50 %")
    assert [line.split()[1] for line in timeline[1:] if line.strip()] == ["approve", "start"]
    assert "Ada Platform" in timeline[1] and "meshgen-bot" in timeline[2]
    # every start in the history came after its predecessor's success commit
    subjects = git(remote, "log", "--reverse", "--format=%s", "main").splitlines()
    assert subjects.index("rollout books (staging): start canary v2, 0 % -> 50 %") > \
        subjects.index("rollout books (dev): canary v2 succeeded at 100 %")
    assert subjects.index("rollout books (prod): start canary v2, 0 % -> 50 %") > \
        subjects.index("rollout books (staging): canary v2 succeeded at 100 %")


def test_a_rollback_stops_the_pipeline_downstream(tmp_path, git_remote):
    remote, work = pushed_repo(tmp_path, git_remote, "promotion: {order: [dev, staging, prod]}\n")
    bot.tick(work, push=True, clock=Clock())
    proc = run_meshgen("rollout", "abort", "books", "--env", "dev", "--push", cwd=work)
    assert proc.returncode == 0, proc.stderr
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert message.startswith("rollout books (dev): rollback canary v2, 50 % -> 0 %: aborted by hand")
    assert "promotion of v2 stops here: staging and prod will not start it" in message
    assert remote_status(remote, "dev")["message"].endswith("staging and prod will not start it")
    clock = Clock()
    clock.now += timedelta(days=1)
    report = bot.tick(work, push=True, clock=clock)
    assert not report.commits
    assert [o.line() for o in report.outcomes if o.env == "staging"] == \
        ["staging/books: v1 -> v2 waits: dev rolled back v1 -> v2: the pipeline stops there"]
    view = run_meshgen("rollout", "status", cwd=work).stdout
    assert "books v1 -> v2: dev \u2717 rolled back \u2192 staging stopped (dev rolled back) \u2192 prod waiting " \
           "for staging" in view
    # promote by hand in staging is refused too: the pipeline holds for humans as for the bot
    refused = run_meshgen("rollout", "promote", "books", "--env", "staging", cwd=work)
    assert refused.returncode == 1
    assert "cannot promote v2: dev rolled back v1 -> v2: the pipeline stops there" in refused.stderr


@pytest.mark.parametrize("settings_text,args,code,message", [
    ("promotion: {order: [dev, staging]}\n", ["--env", "prod"], 2,
     "error: prod is not in the promotion pipeline of books (dev -> staging)"),
    ("promotion: {order: [dev, staging, prod], approval: [prod]}\n", ["--env", "staging"], 2,
     "error: staging needs no approval in the promotion pipeline of books (environments that do: prod)"),
    ("bot: {name: meshgen-bot}\n", ["--env", "prod"], 2,
     "error: books has no promotion pipeline: nothing there needs approval"),
    ("promotion: {order: [dev, staging, prod], approval: [prod]}\n", ["--env", "qa"], 2,
     "error: unknown environment 'qa' (known: dev, prod, staging)"),
])
def test_approve_refuses_with_a_clear_error(tmp_path, git_remote, settings_text, args, code, message):
    remote, work = pushed_repo(tmp_path, git_remote, settings_text)
    proc = run_meshgen("rollout", "approve", "books", *args, cwd=work)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_approval_once_started_has_nothing_waiting(tmp_path, git_remote):
    remote, work = pushed_repo(tmp_path, git_remote, "promotion: {order: [dev, prod], approval: [dev]}\n")
    assert [o.decision.action for o in bot.tick(work, clock=Clock()).outcomes if o.env == "dev"] == [Action.WAIT]
    assert run_meshgen("rollout", "approve", "books", "--env", "dev", cwd=work).returncode == 0
    assert [o.decision.action for o in bot.tick(work, clock=Clock()).commits] == [Action.START]
    proc = run_meshgen("rollout", "approve", "books", "--env", "dev", cwd=work)
    assert proc.returncode == 1
    assert "error: nothing waits for approval: books in dev: v1 -> v2 has already started: it is Progressing" \
        in proc.stderr


def test_environments_come_in_pipeline_order_waves_included():
    """The order of ``rollout status`` and the report: the pipeline's environments as written, a
    wave's members in its order, then the others alphabetically."""
    from generator.rollout.promotion import env_order

    settings = {"promotion": {"order": ["dev", ["prod-eu", "prod-us"], "staging"]}}
    envs = ["zeta", "staging", "prod-us", "alpha", "prod-eu", "dev"]
    assert env_order(settings, envs) == ["dev", "prod-eu", "prod-us", "staging", "alpha", "zeta"]
    assert env_order({}, envs) == sorted(envs)
    assert env_order({"promotion": {"order": "dev"}}, ["b", "a"]) == ["a", "b"]
