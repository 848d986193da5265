"""The rollout bot end to end: real Prometheus scraping Istio-shaped counters that each test
sets, real git clones of a real bare remote, the bot's tick in process and as ``meshgen
rollout``. Intervals are seconds long, so a whole canary takes a few seconds.

Each test gives its app its own namespace, so its series are its own in the shared Prometheus.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from demo.fakemesh import FakeMesh, free_port
from generator.bot import bot
from generator.render import output, render
from tests.conftest import ROOT, build_file_tree, run_meshgen
from tests.promfixtures import clone, git, wait_until, wait_until_checks_due

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: ratings, namespace: {namespace}}}
spec:
  service: {{host: ratings, port: 80}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: default
      to: v1
      timeout: 5s
  rollout: {rollout}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  cluster: {{name: dev, server: https://dev.example.com}}
  prometheus: {{url: {url}}}
"""
STEPS = [20, 50, 100]
INTERVAL = 3  # seconds: the analysis window holds at least two 1 s scrapes even when scrapes run late
WAIT = INTERVAL + 0.2
#: For tests where a second tick must come within the interval after another bot's step: long
#: enough for a tick on a machine busy with parallel test workers.
SLOW_INTERVAL = 10


def rollout_block(**extra):
    block = {"stable": "v1", "canary": "v2", "route": "default", "steps": STEPS, "interval": f"{INTERVAL}s",
             "analysis": {"minRequests": 20, "failureLimit": 2}}
    block.update(extra)
    return json.dumps(block)


#: For tests whose ticks never ask Prometheus (starts, policy time, steering): nothing listens.
NO_PROMETHEUS = "http://127.0.0.1:9"


#: Requests per second to ratings, split by the weight the fake mesh has applied.
RPS = 80


@pytest.fixture
def config(tmp_path, git_remote, request):
    """``make(namespace, url=None, rps=RPS, **rollout)``: a rendered config repo pushed to a
    bare remote, its environment's Prometheus the session's real one unless ``url`` is given;
    returns ``(remote, bot_clone)``. With the real Prometheus, a :class:`FakeMesh` serves
    ``rps`` requests per second split by the weight the remote commits, applied at once (the
    mesh is ``make.mesh``)."""
    meshes: list[FakeMesh] = []

    def make(namespace: str, url: str | None = None, rps: float = RPS, **extra) -> tuple[Path, Path]:
        follow = url is None
        url = url or request.getfixturevalue("prometheus").url
        tree = build_file_tree(tmp_path / "bot", {
            "apps/ratings.yaml": APP.format(namespace=namespace, rollout=rollout_block(**extra)),
            "environments/dev.yaml": ENV.format(url=url)})
        output.write_rendering(tree, render.render_repo(tree))
        remote, work = git_remote(tree)
        if follow:
            meshes.append(FakeMesh(request.getfixturevalue("mesh_traffic"), remote))
            meshes[-1].follow("dev", "ratings", namespace, "ratings", "v1", "v2", rps)
            make.mesh = meshes[-1]
        return remote, work

    yield make
    for mesh in meshes:
        mesh.close()


def healthy(traffic, namespace, v2_errors=0.0):
    """Errors and latency of both versions; their request rates follow the applied weight."""
    traffic.set(namespace, "ratings", "v1", error_ratio=0.0, latency_ms=20)
    traffic.set(namespace, "ratings", "v2", error_ratio=v2_errors, latency_ms=20)


def bot_log(remote: Path, applied: bool = False) -> list[str]:
    """Subjects of the bot's commits on the remote's main, oldest first; those that record a
    weight seen applied only with ``applied``."""
    return [s for s in reversed(git(remote, "log", "--format=%s", "main").splitlines())
            if s.startswith("rollout ") and (applied or not s.endswith(" seen applied"))]


def remote_status(remote: Path) -> dict:
    return yaml.safe_load(git(remote, "show", "main:status/dev/ratings.yaml"))["status"]


def remote_route(remote: Path, namespace: str) -> list:
    vs = yaml.safe_load(git(remote, "show", f"main:rendered/dev/{namespace}/ratings/virtualservice.yaml"))
    return [(d["destination"]["subset"], d.get("weight", 100)) for d in vs["spec"]["http"][-1]["route"]]


def tick_until(clone_: Path, done, timeout: float = 40.0, **kwargs) -> list[bot.TickReport]:
    reports: list[bot.TickReport] = []

    def once():
        reports.append(bot.tick(clone_, push=True, **kwargs))
        return done(reports[-1])

    wait_until(once, timeout, interval=0.4, what="the rollout to move on")
    return reports


@pytest.mark.prometheus
def test_healthy_canary_goes_through_every_step_to_success(config, mesh_traffic):
    healthy(mesh_traffic, "e2e-healthy")
    remote, work = config("e2e-healthy")
    tick_until(work, lambda r: any(o.decision.action.value == "succeed" for o in r.commits))
    assert bot_log(remote) == [
        "rollout ratings (dev): start canary v2, 0 % -> 20 %",
        "rollout ratings (dev): step canary v2, 20 % -> 50 %",
        "rollout ratings (dev): step canary v2, 50 % -> 100 %",
        "rollout ratings (dev): canary v2 succeeded at 100 %",
    ]
    assert remote_status(remote)["phase"] == "Succeeded"
    assert remote_route(remote, "e2e-healthy") == [("v2", 100)]
    # each step commit carries the status, the re-rendered VirtualService and the values
    step = git(remote, "log", "-1", "--format=%B", "--name-only", "--grep=20 % -> 50 %", "main")
    assert "status/dev/ratings.yaml" in step and "rendered/dev/e2e-healthy/ratings/virtualservice.yaml" in step
    assert "Check at" in step and "request-success-rate=1" in step and "requests=" in step
    assert git(remote, "log", "-1", "--format=%an <%ae>", "main").strip() == "meshgen-bot <meshgen-bot@meshgen.invalid>"
    # the committed rendered output is what meshgen renders from the committed specs
    assert run_meshgen("check", cwd=work).returncode == 0
    # the weights of every commit the bot made sum to 100 and take values from steps
    for sha in git(remote, "log", "--format=%H", "--author=meshgen-bot", "main").split():
        vs = yaml.safe_load(git(remote, "show", f"{sha}:rendered/dev/e2e-healthy/ratings/virtualservice.yaml"))
        weights = [d.get("weight", 100) for d in vs["spec"]["http"][-1]["route"]]
        assert sum(weights) == 100


@pytest.mark.prometheus
def test_failing_canary_rolls_back_after_failure_limit(config, mesh_traffic):
    healthy(mesh_traffic, "e2e-failing", v2_errors=0.5)
    remote, work = config("e2e-failing")
    tick_until(work, lambda r: any(o.decision.action.value == "rollback" for o in r.commits))
    log = bot_log(remote)
    assert log[0] == "rollout ratings (dev): start canary v2, 0 % -> 20 %"
    assert log[1].startswith("rollout ratings (dev): failed check 1 of 2, canary v2 stays at 20 %: "
                             "request-success-rate 0.")
    assert log[2].startswith("rollout ratings (dev): rollback canary v2, 20 % -> 0 %: request-success-rate 0.")
    assert log[2].endswith("< min 0.99") and len(log) == 3
    assert remote_status(remote)["phase"] == "RolledBack"
    assert remote_route(remote, "e2e-failing") == [("v1", 100)]
    # rolled back: later ticks change nothing
    before = git(remote, "rev-parse", "main")
    time.sleep(WAIT)
    assert bot.tick(work, push=True).commits == []
    assert git(remote, "rev-parse", "main") == before


@pytest.mark.prometheus
def test_no_data_holds_and_commits_nothing(config, mesh_traffic):
    remote, work = config("e2e-nodata", rps=0)  # no traffic at all for this service
    first = bot.tick(work, push=True)
    assert [o.decision.action.value for o in first.commits] == ["start"]
    wait_until_checks_due(work)
    report = bot.tick(work, push=True)
    assert [o.decision.action.value for o in report.outcomes] == ["hold"]
    # without traffic the new weight cannot be seen applied: one query (the split), no check
    assert report.outcomes[0].decision.reason == \
        "waiting for 20 % to be applied; no requests to either version in the last 3s"
    assert report.commits == [] and report.queries == 1
    assert bot_log(remote) == ["rollout ratings (dev): start canary v2, 0 % -> 20 %"]
    assert git(work, "status", "--porcelain") == ""


@pytest.mark.prometheus
def test_too_few_requests_hold(config, mesh_traffic):
    remote, work = config("e2e-few", rps=5)  # v2 gets 1 request per second at 20 %
    bot.tick(work, push=True)
    wait_until_checks_due(work)
    reports = tick_until(work, lambda r: "fewer than" in r.outcomes[0].decision.reason, timeout=10)
    # the 20 % is seen applied (a commit), then its checks hold: nothing steps
    assert {o.decision.action.value for r in reports for o in r.outcomes} <= {"applied", "nothing", "hold"}
    assert "requests to v2 in the last 3s, fewer than minRequests 20" in reports[-1].outcomes[0].decision.reason
    assert len(bot_log(remote)) == 1


def _start_and_wait(work: Path, seconds: float = WAIT) -> None:
    """Start, tick until the first weight is seen applied (its analysis window starts), wait."""
    assert [o.decision.action.value for o in bot.tick(work, push=True).commits] == ["start"]
    tick_until(work, lambda r: any(o.decision.action.value == "applied" for o in r.commits), timeout=20)
    time.sleep(seconds)


@pytest.mark.prometheus
def test_two_bots_ticking_at_the_same_moment_never_double_step(config, mesh_traffic, tmp_path):
    healthy(mesh_traffic, "e2e-twobots")
    remote, work = config("e2e-twobots", interval=f"{SLOW_INTERVAL}s")
    other = clone(remote, tmp_path / "other")
    _start_and_wait(work, SLOW_INTERVAL + 0.2)
    git(other, "pull", "-q")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")

    def both_tick() -> bool:
        procs = [subprocess.Popen([sys.executable, "-m", "generator", "rollout", "step", "--push"], cwd=c, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in (work, other)]
        outputs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        return len(bot_log(remote)) > 1  # until a check was conclusive

    wait_until(both_tick, 30, interval=0, what="a step")
    assert bot_log(remote) == ["rollout ratings (dev): start canary v2, 0 % -> 20 %",
                               "rollout ratings (dev): step canary v2, 20 % -> 50 %"]


@pytest.mark.prometheus
def test_a_push_rejected_mid_tick_is_decided_again(config, mesh_traffic, tmp_path):
    """The other bot pushes its step while this one is pushing (from this clone's pre-push
    hook): this bot's push is rejected, it moves onto the new head, decides again -- the
    interval has not passed since the other bot's step -- and commits nothing."""
    healthy(mesh_traffic, "e2e-race")
    remote, work = config("e2e-race", interval=f"{SLOW_INTERVAL}s")
    other = clone(remote, tmp_path / "other")
    _start_and_wait(work, SLOW_INTERVAL + 0.2)
    hook = work / ".git" / "hooks" / "pre-push"
    hook.write_text(f"""#!/bin/sh
if [ ! -e "{tmp_path}/hook-ran" ]; then
  touch "{tmp_path}/hook-ran"
  unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
  cd "{other}"
  for try in 1 2 3 4 5 6 7 8 9 10; do
    PYTHONPATH="{ROOT}" "{sys.executable}" -m generator rollout step --push >>"{tmp_path}/other.log" 2>&1
    git log -1 --format=%s | grep -q "20 % -> 50 %" && break
    sleep 0.5
  done
fi
exit 0
""")
    hook.chmod(0o755)
    reports = tick_until(work, lambda r: (tmp_path / "hook-ran").exists())
    assert "step canary v2, 20 % -> 50 %" in git(other, "log", "-1", "--format=%s"), (tmp_path / "other.log").read_text()
    assert reports[-1].attempts == 2 and reports[-1].commits == []
    assert bot_log(remote) == ["rollout ratings (dev): start canary v2, 0 % -> 20 %",
                               "rollout ratings (dev): step canary v2, 20 % -> 50 %"]
    assert git(work, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")


@pytest.mark.prometheus
def test_human_commits_are_kept(config, mesh_traffic, tmp_path):
    healthy(mesh_traffic, "e2e-human")
    remote, work = config("e2e-human")
    human = clone(remote, tmp_path / "human")
    _start_and_wait(work, 0)
    # a human change pushed between ticks
    git(human, "pull", "-q")
    spec = human / "apps" / "ratings.yaml"
    spec.write_text(spec.read_text().replace("timeout: 5s", "timeout: 7s"))
    output.write_rendering(human, render.render_repo(human))
    git(human, "commit", "-qam", "ratings: timeout 7s")
    git(human, "push", "-q")
    # and another one pushed while the bot pushes its step (from the bot clone's pre-push hook)
    hook = work / ".git" / "hooks" / "pre-push"
    hook.write_text(f"""#!/bin/sh
if [ ! -e "{tmp_path}/hook-ran" ]; then
  touch "{tmp_path}/hook-ran"
  unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
  cd "{human}" && echo "# owner: team-ratings" >> environments/dev.yaml && git commit -qam "dev: owner note" && git push -q
fi
exit 0
""")
    hook.chmod(0o755)
    time.sleep(WAIT)
    report = tick_until(work, lambda r: bool(r.commits))[-1]
    assert report.attempts == 2 and [o.decision.action.value for o in report.commits] == ["step"]
    subjects = [s for s in git(remote, "log", "--format=%s", "main").splitlines() if not s.endswith(" seen applied")]
    assert subjects[:4] == ["rollout ratings (dev): step canary v2, 20 % -> 50 %", "dev: owner note",
                            "ratings: timeout 7s", "rollout ratings (dev): start canary v2, 0 % -> 20 %"]
    vs = git(remote, "show", "main:rendered/dev/e2e-human/ratings/virtualservice.yaml")
    assert "timeout: 7s" in vs and "weight: 50" in vs


@pytest.mark.prometheus
def test_a_tick_killed_between_writing_and_committing_is_completed_by_the_next(config, mesh_traffic):
    healthy(mesh_traffic, "e2e-killed")
    remote, work = config("e2e-killed")
    _start_and_wait(work)

    def die() -> None:
        raise KeyboardInterrupt("killed between writing and committing")

    def killed() -> bool:
        try:
            bot.tick(work, push=True, before_commit=die)
        except KeyboardInterrupt:
            return True
        return False  # the check was inconclusive: nothing to write yet

    wait_until(killed, 20, what="a tick that writes")
    assert "status/dev/ratings.yaml" in git(work, "status", "--porcelain")
    assert len(bot_log(remote)) == 1
    tick_until(work, lambda r: bool(r.commits), timeout=15)
    assert bot_log(remote) == ["rollout ratings (dev): start canary v2, 0 % -> 20 %",
                               "rollout ratings (dev): step canary v2, 20 % -> 50 %"]
    assert git(work, "status", "--porcelain") == ""
    assert remote_route(remote, "e2e-killed") == [("v1", 50), ("v2", 50)]


def test_prometheus_down_exits_3_and_commits_nothing(config):
    remote, work = config("e2e-down", url=f"http://127.0.0.1:{free_port()}")
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)  # the start needs no Prometheus
    before = git(remote, "rev-parse", "main")
    wait_until_checks_due(work)
    proc = run_meshgen("rollout", "step", "--push", cwd=work)
    assert proc.returncode == 3, proc.stderr
    assert "error: environment dev: Prometheus at http://127.0.0.1:" in proc.stderr
    assert git(remote, "rev-parse", "main") == before
    assert git(work, "rev-parse", "HEAD") == before
    assert git(work, "status", "--porcelain") == ""


def test_dry_run_writes_nothing(config):
    remote, work = config("e2e-dry", url=NO_PROMETHEUS)
    proc = run_meshgen("rollout", "step", "--dry-run", cwd=work, check=True)
    assert "dev/ratings: new rollout v1 -> v2: canary v2 at 20 %" in proc.stdout
    assert git(work, "status", "--porcelain") == "" and bot_log(remote) == []


def test_dry_run_refuses_an_invalid_spec_as_a_real_tick_would(config):
    remote, work = config("e2e-dry-bad", url=NO_PROMETHEUS)
    spec = work / "apps" / "ratings.yaml"
    spec.write_text(spec.read_text() + "  timout: 5s\n")  # a misspelt field under spec
    proc = run_meshgen("rollout", "step", "--dry-run", cwd=work)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apps/ratings.yaml:" in proc.stderr and "unknown field 'timout' in spec" in proc.stderr


@pytest.mark.prometheus
def test_slack_is_told_after_the_push(config, mesh_traffic, recorder, monkeypatch):
    hook = recorder()
    monkeypatch.setenv("E2E_SLACK_URL", hook.url)
    healthy(mesh_traffic, "e2e-slack")
    remote, work = config("e2e-slack", notify={"slack": {"webhookUrlEnv": "E2E_SLACK_URL"}})
    _start_and_wait(work)
    tick_until(work, lambda r: bool(r.commits))
    texts = [json.loads(r["body"])["text"] for r in hook.requests]
    assert texts[0] == ":rocket: meshgen rollout ratings in dev: new rollout v1 -> v2: canary v2 at 20 %"
    assert texts[1].startswith(":arrow_up: meshgen rollout ratings in dev: step v2 20 % -> 50 % (requests=")


def test_steering_by_hand_and_the_status_table(config):
    remote, work = config("e2e-steer", url=NO_PROMETHEUS, policy="time", interval="1h")
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)
    for command in ("pause", "resume", "promote"):
        run_meshgen("rollout", command, "ratings", "--push", cwd=work, check=True)
    proc = run_meshgen("rollout", "pause", "ratings", cwd=work)
    assert proc.returncode == 1
    assert proc.stderr == "error: dev/ratings: nothing to pause: the rollout of v2 is Succeeded\n"
    assert bot_log(remote) == ["rollout ratings (dev): start canary v2, 0 % -> 20 %",
                               "rollout ratings (dev): pause canary v2 at 20 %",
                               "rollout ratings (dev): resume canary v2, 20 % -> 20 %",
                               "rollout ratings (dev): promote canary v2 by hand, 20 % -> 100 %"]
    # steering commits are the human's, not the bot's
    assert git(remote, "log", "-1", "--format=%ae", "main").strip() == "author@example.com"
    table = run_meshgen("rollout", "status", cwd=work, check=True).stdout
    assert "ratings" in table and "Succeeded" in table and "v1 0 % / v2 100 %" in table and "3/3" in table
    assert run_meshgen("rollout", "resume", "ratings", cwd=work).returncode == 1  # nothing to resume, no commit
    assert len(bot_log(remote)) == 4


def test_status_table_keeps_phase_and_weights_whole_on_80_columns(config):
    remote, work = config("e2e-narrow", url=NO_PROMETHEUS, policy="time", interval="1h")
    run_meshgen("rollout", "step", cwd=work, check=True)
    table = run_meshgen("rollout", "status", cwd=work, env={"COLUMNS": "80"}, check=True).stdout
    assert "│ Progressing │ v1 80 % / v2 20 % │" in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_a_tick_renders_only_the_apps_it_changes(config, monkeypatch):
    """The tick re-renders the apps whose status it commits, not the whole repository, and
    what it writes is what a full render gives."""
    remote, work = config("e2e-only", url=NO_PROMETHEUS, policy="time", interval="1h")
    (work / "apps" / "reviews.yaml").write_text(APP.split("  rollout:")[0].replace("ratings", "reviews")
                                                .format(namespace="e2e-only"))
    output.write_rendering(work, render.render_repo(work))
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "reviews")
    rendered = []
    real = render._Renderer.render_app

    def recording(self, app, env_spec, out):
        rendered.append((app.env, app.name))
        return real(self, app, env_spec, out)

    monkeypatch.setattr(render._Renderer, "render_app", recording)
    report = bot.tick(work)
    assert [(o.env, o.app) for o in report.commits] == [("dev", "ratings")]
    assert rendered == [("dev", "ratings")]
    assert git(work, "show", "--format=", "--name-only", "HEAD").split() == [
        "rendered/dev/e2e-only/ratings/destinationrule.yaml", "rendered/dev/e2e-only/ratings/virtualservice.yaml",
        "status/dev/ratings.yaml"]
    monkeypatch.undo()
    run_meshgen("check", cwd=work, check=True)  # rendered/ is what a full render gives
    assert git(work, "status", "--porcelain") == ""


def test_status_without_rollouts_says_so(tmp_path):
    run_meshgen("init", str(tmp_path / "repo"), cwd=tmp_path, check=True)
    proc = run_meshgen("rollout", "status", cwd=tmp_path / "repo", check=True)
    assert proc.stdout == "no rollouts: no app has a `rollout` block\n"


def test_abort_rolls_back_now(config):
    remote, work = config("e2e-abort", url=NO_PROMETHEUS, policy="time", interval="1h")
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)
    run_meshgen("rollout", "abort", "ratings", "--env", "dev", "--push", cwd=work, check=True)
    assert bot_log(remote)[-1] == "rollout ratings (dev): rollback canary v2, 20 % -> 0 %: aborted by hand"
    assert remote_route(remote, "e2e-abort") == [("v1", 100)]
    start, rollback = git(remote, "log", "-2", "--format=%b%x00", "main").split("\0")[1::-1]
    assert "Status: Progressing, v1 80 % / v2 20 %, step 1, failed checks 0" in start
    assert "Status: RolledBack, v1 100 % / v2 0 %, failed checks 0" in rollback  # never "step -1"


def test_time_policy_steps_without_metrics(config):
    remote, work = config("e2e-time", url=NO_PROMETHEUS, policy="time", interval="1s", steps=[50, 100])
    tick_until(work, lambda r: any(o.decision.action.value == "succeed" for o in r.commits), timeout=15)
    assert [s.split(": ", 1)[1] for s in bot_log(remote)] == [
        "start canary v2, 0 % -> 50 %", "step canary v2, 50 % -> 100 %", "canary v2 succeeded at 100 %"]


def test_invalid_custom_query_is_a_spec_error_with_its_place(tmp_path):
    """Refused before any tick (validate renders every query), not at the first analysis."""
    block = rollout_block(policy="metric", interval="1s",
                          analysis={"metrics": [{"name": "errors", "query": "{{ nope }}", "max": 1}]})
    work = build_file_tree(tmp_path / "bot", {
        "apps/ratings.yaml": APP.format(namespace="e2e-badquery", rollout=block),
        "environments/dev.yaml": ENV.format(url=NO_PROMETHEUS)})
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "a rollout with a typo in its query")
    for command in (["validate"], ["rollout", "step"]):
        proc = run_meshgen(*command, cwd=work)
        assert proc.returncode == 1
        assert proc.stderr.startswith("apps/ratings.yaml:13:") and "'nope' is undefined" in proc.stderr
    assert git(work, "status", "--porcelain") == "" and git(work, "rev-list", "--count", "HEAD").strip() == "1"


def test_run_stops_cleanly_on_ctrl_c(config):
    import signal

    remote, work = config("e2e-run", url=NO_PROMETHEUS, policy="time", interval="1h")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "generator", "rollout", "run", "--every", "1s", "--push"],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: bot_log(remote), 20, what="the first tick")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopping after this tick" in err and "stopped" in err
    assert "dev/ratings: new rollout v1 -> v2" in out
    assert git(work, "status", "--porcelain") == ""


@pytest.mark.prometheus
def test_a_dry_run_metric_is_recorded_in_status_and_commit_but_never_decides(config, mesh_traffic):
    healthy(mesh_traffic, "e2e-dryrun")
    remote, work = config("e2e-dryrun", steps=[50, 100], analysis={
        "minRequests": 20, "failureLimit": 1,
        "metrics": [{"name": "request-duration-p99", "max": 1, "dryRun": True}]})
    tick_until(work, lambda r: any(o.decision.action.value in ("step", "rollback") for o in r.commits))
    assert bot_log(remote)[-1] == "rollout ratings (dev): step canary v2, 50 % -> 100 %"
    check = remote_status(remote)["lastCheck"]
    assert check["verdict"] == "pass" and check["metrics"]["request-duration-p99"] > 1
    assert check["dryRun"]["request-duration-p99"]["verdict"] == "fail"
    assert "> max 1" in check["dryRun"]["request-duration-p99"]["reason"]
    body = git(remote, "log", "-1", "--format=%B", "main")
    assert "Dry run request-duration-p99: fail, request-duration-p99 " in body and "(not part of the verdict)" in body
    assert run_meshgen("validate", cwd=work).returncode == 0
    [timeline] = json.loads(run_meshgen("rollout", "history", "ratings", "--output", "json", cwd=work,
                                        check=True).stdout)["rollouts"]
    assert [e["kind"] for e in timeline["events"]] == ["start", "applied", "step"]
    assert timeline["events"][1]["applied"]["weight"] == 50 and timeline["events"][1]["applied"]["requests"] > 0
    assert timeline["events"][2]["check"]["dryRun"]["request-duration-p99"]["verdict"] == "fail"
