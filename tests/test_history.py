"""``meshgen rollout history``: timelines rebuilt from the contents of status files in git.

The pure reconstruction is checked from revisions made by the real decision function; the
git side from a real repository whose status commits are written by the bot's own code
(decision, status file, commit message) and by the real steering commands, authored by a
human; and end to end with a real tick against a real Prometheus (a ``dryRun`` metric).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from generator.bot import bot
from generator.bot import history as bot_history
from generator.errors import UsageError
from generator.rollout import decision, history
from generator.rollout.decision import Action, Check, Rollout, Verdict
from generator.render import output, render
from generator.spec import status as status_file
from tests.conftest import build_file_tree, run_meshgen

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
ROLLOUT = Rollout.from_spec({"stable": "v1", "canary": "v2", "route": "default", "steps": [20, 50, 100],
                             "interval": "1m", "analysis": {"failureLimit": 2}})
PASS = Check(Verdict.PASS, {"requests": 240.0, "request-success-rate": 1.0}, "all metrics within bounds")
FAIL = Check(Verdict.FAIL, {"requests": 240.0, "request-success-rate": 0.7}, "request-success-rate 0.7 < min 0.99")
HOLD = Check(Verdict.INCONCLUSIVE, {"requests": 3.0}, "3 requests to v2 in the last 60s, fewer than minRequests 100")


def rev(n, st, author="meshgen-bot", env="dev", app="books"):
    return history.Revision(f"{n:040x}", author, f"{author}@x", T0 + timedelta(minutes=n), f"commit {n}", env, app, st)


def run_decisions(checks, status=None, start=0):
    """Statuses the real decision function gives for ``checks`` one minute apart."""
    out = []
    for minute, check in enumerate(checks, start):
        status = decision.decide(ROLLOUT, "dev", status, check, T0 + timedelta(minutes=minute)).status
        out.append(status)
    return out


def test_every_kind_of_change_is_told_from_the_contents():
    statuses = run_decisions([None, FAIL, PASS, PASS, PASS])
    paused = decision.pause(ROLLOUT, statuses[2], T0).status
    resumed = decision.resume(ROLLOUT, paused, T0).status
    assert [history.classify(a, b) for a, b in zip([None] + statuses, statuses)] == \
        ["start", "failed-check", "step", "step", "succeed"]
    assert history.classify(statuses[2], paused) == "pause"
    assert history.classify(paused, resumed) == "resume"
    assert history.classify(statuses[1], decision.abort(ROLLOUT, statuses[1], T0).status) == "abort"
    assert history.classify(statuses[1], decision.promote(ROLLOUT, statuses[1], T0).status) == "promote"
    assert history.classify(None, decision.promote(ROLLOUT, None, T0).status) == "promote"
    rolled = run_decisions([FAIL, FAIL], statuses[0], start=1)
    assert history.classify(rolled[0], rolled[1]) == "rollback"
    assert history.classify(rolled[1], decision.resume(ROLLOUT, rolled[1], T0).status) == "restart"
    held = dict(statuses[0], lastCheck={"time": "2026-11-20T10:09:00Z", "verdict": "inconclusive", "reason": "x"})
    assert history.classify(statuses[0], held) == "hold"
    assert history.classify(statuses[0], None) == "remove"
    assert history.classify(statuses[0], dict(statuses[0], message="edited")) == "change"


def test_timelines_split_at_a_restart_and_a_new_canary_and_keep_check_values():
    first = run_decisions([None, FAIL, FAIL])            # start, failed check, rollback
    restarted = decision.resume(ROLLOUT, first[-1], T0).status
    other = Rollout.from_spec({"stable": "v2", "canary": "v3", "route": "default", "steps": [100]})
    third = decision.decide(other, "dev", restarted, None, T0).status
    revisions = [rev(0, first[0]), rev(1, first[1]), rev(1, first[1]), rev(2, first[2]),
                 rev(3, restarted, author="Ada"), rev(4, third), rev(5, first[0], app="reviews")]
    found = history.timelines(revisions)
    assert [(t.app, t.canary, [e.kind for e in t.events], t.phase) for t in found] == [
        ("books", "v2", ["start", "failed-check", "rollback"], "RolledBack"),
        ("books", "v2", ["restart"], "Progressing"),
        ("books", "v3", ["start"], "Progressing"),
        ("reviews", "v2", ["start"], "Progressing")]
    rollback = found[0].events[-1]
    assert (rollback.weight_before, rollback.weight) == (20, 0)
    assert rollback.check["metrics"] == {"requests": 240.0, "request-success-rate": 0.7}
    assert found[0].ended == T0 + timedelta(minutes=2)
    assert found[1].events[0].author == "Ada" and found[1].events[0].weight_before == 0
    assert history.select(found, app="books", since=T0 + timedelta(minutes=3)) == found[1:3]


SWITCHED = [ROLLOUT, Rollout.from_spec({"stable": "v1", "canary": "v3", "route": "default", "steps": [20, 50, 100],
                                        "interval": "1m", "analysis": {"failureLimit": 2}})]
CHECKS = {v: Check(v, {"requests": 100.0}, v.value) for v in Verdict}
KIND = {Action.START: "start", Action.STEP: "step", Action.FAIL_COUNT: "failed-check", Action.ROLLBACK: "rollback",
        Action.SUCCEED: "succeed", Action.PAUSE: "pause", Action.ABORT: "abort", Action.PROMOTE: "promote"}
moves = st.lists(st.tuples(st.sampled_from(["tick", "tick", "tick", "pause", "resume", "abort", "promote", "switch"]),
                           st.sampled_from(list(Verdict)), st.integers(min_value=30, max_value=200)),
                 max_size=40)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(moves)
def test_every_committed_decision_is_told_back_from_the_status_contents(steps):
    """Whatever the bot and the steering commands commit, in any order, history names what
    each commit did (the decision's action) from the status contents alone, and the
    timelines replay every committed weight."""
    status, now, which = None, T0, 0
    revisions, expected = [], []
    for move, verdict, seconds in steps:
        now += timedelta(seconds=seconds)
        if move == "switch":
            which = 1 - which
            move = "tick"
        rollout = SWITCHED[which]
        if move == "tick":
            check = CHECKS[verdict] if decision.check_due(rollout, status, now) else None
            made = decision.decide(rollout, "dev", status, check, now)
        else:
            made = getattr(decision, move)(rollout, status, now)
        if made.action is Action.NOTHING or not decision.committed_change(status, made.status):
            continue
        kind = KIND.get(made.action)
        if made.action is Action.RESUME:
            kind = "restart" if status.get("phase") == decision.ROLLED_BACK else "resume"
        expected.append((kind, made.status["canaryWeight"]))
        revisions.append(history.Revision(f"{len(revisions):040x}", "x", "x@x", now, "", "dev", "app", made.status))
        status = made.status
    found = history.timelines(revisions)
    assert [(e.kind, e.weight) for t in found for e in t.events] == expected
    assert all(t.events[0].kind in ("start", "restart", "promote") for t in found)


@pytest.mark.parametrize("text,expected", [
    ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=timezone.utc)),
    ("2026-11-22T12:00:00+02:00", datetime(2026, 11, 22, 10, tzinfo=timezone.utc)),
    ("2026-11-22", datetime(2026, 11, 22, tzinfo=timezone.utc)),
    ("24h", T0 - timedelta(hours=24)), ("now-90m", T0 - timedelta(minutes=90)), ("7d", T0 - timedelta(days=7)),
    ("now", T0),
])
def test_moments_on_the_command_line(text, expected):
    assert history.parse_moment(text, T0) == expected


@pytest.mark.parametrize("text", ["yesterday", "", "24", "2026-13-01"])
def test_bad_moments_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="RFC 3339"):
        history.parse_moment(text, T0)


# --- a real repository ----------------------------------------------------------------------

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: books, namespace: mesh}
spec:
  service: {host: books, port: 80}
  versions: {v1: {labels: {version: v1}}, v2: {labels: {version: v2}}}
  routes: [{name: default, to: v1}]
  rollout: {stable: v1, canary: v2, route: default, steps: [20, 50, 100], interval: 1m, analysis: {failureLimit: 2}}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec: {prometheus: {url: "http://127.0.0.1:9"}}
"""


def git(cwd, *args, when=None, author=None):
    env = dict(os.environ)
    if when:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    if author:
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = author
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    work = build_file_tree(tmp_path / "repo", {"apps/books.yaml": APP, "environments/dev.yaml": ENV})
    output.write_rendering(work, render.render_repo(work))
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "books in dev", when=T0 - timedelta(hours=1))
    return work


class Bot:
    """Commits what the bot's tick commits for a given check: the decision, the status file
    and the commit message, authored by meshgen-bot."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.minute = 0

    def tick(self, check):
        now = T0 + timedelta(minutes=self.minute)
        self.minute += 1
        old = status_file.load_status(self.work, "status/dev/books.yaml")
        made = decision.decide(ROLLOUT, "dev", old, check, now)
        (self.work / "status/dev").mkdir(parents=True, exist_ok=True)
        output.atomic_write(self.work / "status/dev/books.yaml", status_file.dump_status("dev", "books", made.status))
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", bot.commit_message("dev", "books", old, made, 2), when=now, author="meshgen-bot")

    def steer(self, command, monkeypatch):
        now = T0 + timedelta(minutes=self.minute)
        self.minute += 1
        monkeypatch.setenv("GIT_AUTHOR_NAME", "Ada Platform")
        bot.steer(self.work, command, "books", clock=lambda: now)


def test_history_from_git_names_each_step_check_and_the_human_who_steered(repo, monkeypatch):
    b = Bot(repo)
    b.tick(None)          # start at 20 %
    b.tick(FAIL)          # failed check 1 of 2
    b.tick(PASS)          # 50 %
    b.steer("pause", monkeypatch)
    git(repo, "commit", "-q", "--allow-empty", "-m", "unrelated human commit")
    b.steer("resume", monkeypatch)
    b.minute += 1
    b.tick(FAIL)
    b.minute += 1
    b.tick(FAIL)          # rollback
    b.steer("resume", monkeypatch)   # restart from the first step
    b.steer("promote", monkeypatch)
    found = bot_history.read_history(repo)
    assert [[(e.kind, e.weight_before, e.weight, e.author) for e in t.events] for t in found] == [
        [("start", 0, 20, "meshgen-bot"), ("failed-check", 20, 20, "meshgen-bot"), ("step", 20, 50, "meshgen-bot"),
         ("pause", 50, 50, "Ada Platform"), ("resume", 50, 50, "Ada Platform"),
         ("failed-check", 50, 50, "meshgen-bot"), ("rollback", 50, 0, "meshgen-bot")],
        [("restart", 0, 20, "Ada Platform"), ("promote", 20, 100, "Ada Platform")]]
    first = found[0]
    assert first.events[1].check["metrics"]["request-success-rate"] == 0.7
    assert first.events[1].time == T0 + timedelta(minutes=1)
    assert first.events[-1].subject.startswith("rollout books (dev): rollback canary v2, 50 % -> 0 %")

    text = run_meshgen("rollout", "history", "books", cwd=repo, check=True).stdout
    assert text.splitlines()[0] == ("books (dev): v1 -> v2, RolledBack at 0 %, "
                                    "2026-11-20T10:00:00Z .. 2026-11-20T10:08:00Z (8m)")
    assert ("failed-check     at  20 %  " in text and "meshgen-bot: fail: request-success-rate 0.7 < min 0.99 "
            "(requests=240, request-success-rate=0.7)" in text)
    assert "pause            at  50 %" in text and "Ada Platform: paused by hand at 50 %" in text
    data = json.loads(run_meshgen("rollout", "history", "--output", "json", "--since", "2026-11-20T10:09:00Z",
                                  cwd=repo, check=True).stdout)
    assert [(r["canary"], r["phase"], [e["kind"] for e in r["events"]]) for r in data["rollouts"]] == \
        [("v2", "Succeeded", ["restart", "promote"])]


def test_empty_history_and_unknown_names(repo):
    proc = run_meshgen("rollout", "history", cwd=repo)
    assert (proc.returncode, proc.stdout) == (0, "no rollout history: no commit changed a status file\n")
    assert json.loads(run_meshgen("rollout", "history", "books", "--output", "json", cwd=repo).stdout) == \
        {"rollouts": []}
    proc = run_meshgen("rollout", "history", "bookz", cwd=repo)
    assert proc.returncode == 2 and "unknown app 'bookz'" in proc.stderr
    proc = run_meshgen("rollout", "history", "--since", "last tuesday", cwd=repo)
    assert proc.returncode == 2 and "--since: 'last tuesday' is not a time" in proc.stderr
    with pytest.raises(UsageError, match="not in a git repository"):
        bot_history.read_history(build_file_tree(repo.parent / "plain", {"environments/dev.yaml": ENV}))


def test_history_parses_each_status_blob_once_across_runs(repo, monkeypatch):
    """Parsed status blobs are kept by blob id in .git/meshgen: a later run parses only the new
    ones and tells the same history; a damaged store is parsed afresh."""
    b = Bot(repo)
    b.tick(None)
    b.tick(PASS)
    first = bot_history.read_history(repo)
    assert (repo / ".git/meshgen/status-blobs.pickle").is_file()
    parsed = []
    real = bot_history._status
    monkeypatch.setattr(bot_history, "_status", lambda data: parsed.append(data) or real(data))
    assert bot_history.read_history(repo) == first and parsed == []
    b.tick(PASS)
    again = bot_history.read_history(repo)
    assert len(parsed) == 1 and again[0].events[:2] == first[0].events
    (repo / ".git/meshgen/status-blobs.pickle").write_bytes(b"damaged")
    assert bot_history.read_history(repo) == again and len(parsed) == 4


def test_history_command_loads_none_of_the_tick_machinery_and_prints_a_rollout_a_line(repo):
    """``rollout history`` reads git with git itself and prints: over 10,000 commits the
    imports of the tick (Prometheus, gates, templates, GitPython) would cost as much as git's
    own work, so the command loads none of them; ``--output json`` writes one rollout to a line
    (``bench/history.py`` holds the command within 3x git's floor)."""
    b = Bot(repo)
    b.tick(None)
    b.tick(PASS)
    probe = ("import json, sys\n"
             "from generator.cli import main\n"
             "try:\n"
             "    main(['rollout', 'history', '--output', 'json'])\n"
             "except SystemExit:\n"
             "    pass\n"
             "heavy = ('generator.bot.bot', 'generator.bot.prometheus', 'generator.rollout.promotion', 'git', 'httpx',"
             " 'jinja2')\n"
             "print(json.dumps(sorted(m for m in heavy if m in sys.modules and"
             " type(sys.modules[m]).__name__ != '_LazyModule')))\n")
    proc = subprocess.run([os.sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    assert proc.returncode == 0, proc.stderr
    document, loaded = proc.stdout.rsplit("\n", 2)[:2]
    assert json.loads(loaded) == []
    lines = document.splitlines()
    assert lines[0] == '{"rollouts": [' and lines[-1] == "]}" and len(lines) == 3
    assert [e["kind"] for e in json.loads(document)["rollouts"][0]["events"]] == ["start", "step"]
    # a steering command, which needs the bot, still finds it
    assert run_meshgen("rollout", "pause", "books", cwd=repo).returncode == 0
