"""The bot under faults, with a real Prometheus and real bare remotes: Prometheus refusing,
answering 500, answering garbage and slow; the remote rejecting pushes (a pre-receive hook)
and vanishing; ``kill -9`` of the whole process group of a tick at random moments.

After every fault one normal tick recovers, and then: the clone is clean, the remote has every
human commit, its history is linear and never moved other than forward (no forced update),
and every status file's weights are the weights of its rendered VirtualService.

Prometheus is reached through :class:`FaultyPrometheus`, a local HTTP server in front of the
session's real Prometheus that answers as a test tells it to.
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from demo.fakemesh import free_port
from generator.bot import bot
from tests.conftest import ROOT, build_file_tree, require_loopback, run_meshgen
from tests.promfixtures import clone, git, wait_until, wait_until_checks_due

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
    - {{name: default, to: v1, timeout: 5s}}
  rollout: {rollout}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  cluster: {{name: dev, server: https://dev.example.com}}
  prometheus: {{url: "{url}"}}
"""
#: Two apps stepping on time alone (a commit every tick), one judged by Prometheus.
TIMED = ("alpha", "beta")
METERED = "gamma"
STEPS = list(range(2, 101, 2))
KILL_TRIALS = 20
_NAMESPACES = itertools.count(1)


class FaultyPrometheus:
    """An HTTP server in front of a real Prometheus; ``mode`` says how it answers:
    ``ok`` (forwards), ``500``, ``garbage`` (200 with a body that is not JSON), ``truncated``
    (200 with half a JSON document), ``wrong shape`` (JSON, but not a vector's) or ``slow``
    (forwards after ``delay`` seconds)."""

    def __init__(self, upstream: str) -> None:
        self.mode, self.delay, self.requests = "ok", 0.0, 0
        faulty = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                faulty.requests += 1
                mode = faulty.mode
                status, body = 200, b""
                if mode == "500":
                    status, body = 500, json.dumps({"status": "error", "errorType": "internal",
                                                    "error": "storage is on fire"}).encode()
                elif mode == "garbage":
                    body = b"<html><body>502 Bad Gateway from a proxy</body></html>"
                elif mode == "truncated":
                    body = b'{"status": "success", "data": {"resultType": "vec'
                elif mode == "wrong shape":
                    body = b'{"status": "success", "data": {"resultType": "vector", "result": "all good"}}'
                else:
                    if mode == "slow":
                        time.sleep(faulty.delay)
                    answer = httpx.get(upstream + self.path, timeout=10)
                    status, body = answer.status_code, answer.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a killed tick hangs up mid-answer: expected here

        require_loopback()
        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def faulty(prometheus):
    server = FaultyPrometheus(prometheus.url)
    yield server
    server.close()


@pytest.fixture
def setup(tmp_path, git_remote, faulty, mesh_traffic):
    """A config repo with three rollouts pushed to a bare remote; returns ``(remote, bot
    clone, human clone)``. The remote logs every ref update (to see a forced one)."""
    namespace = f"faults-{next(_NAMESPACES)}"  # its own series in the session's Prometheus
    files = {"environments/dev.yaml": ENV.format(url=faulty.url), "docs/owners.md": "# owners\n"}
    for name in TIMED:
        files[f"apps/{name}.yaml"] = APP.format(name=name, namespace=namespace, rollout=json.dumps(
            {"stable": "v1", "canary": "v2", "route": "default", "steps": STEPS, "interval": "1s", "policy": "time"}))
    files[f"apps/{METERED}.yaml"] = APP.format(name=METERED, namespace=namespace, rollout=json.dumps(
        {"stable": "v1", "canary": "v2", "route": "default", "steps": STEPS, "interval": "1s",
         "analysis": {"minRequests": 5, "failureLimit": 3}}))
    tree = build_file_tree(tmp_path / "bot", files)
    run_meshgen("render", cwd=tree, check=True)
    mesh_traffic.set(namespace, METERED, "v1", rps=30, error_ratio=0.0, latency_ms=20)
    mesh_traffic.set(namespace, METERED, "v2", rps=30, error_ratio=0.0, latency_ms=20)
    remote, work = git_remote(tree)
    git(remote, "config", "core.logAllRefUpdates", "always")
    human = clone(remote, tmp_path / "human")
    git(human, "config", "user.email", "owner@example.com")
    return remote, work, human


# --- what must hold after every fault ------------------------------------------------------


class History:
    """What the remote must keep: the human commits, and a head that only moves forward."""

    def __init__(self, remote: Path) -> None:
        self.remote = remote
        self.humans: list[str] = []
        self.head = self.main()

    def main(self) -> str:
        return git(self.remote, "rev-parse", "main").strip()

    def human_commit(self, human: Path, n: int) -> None:
        git(human, "pull", "-q", "--ff-only")
        (human / "docs" / "owners.md").write_text(f"# owners\nround {n}\n")
        git(human, "commit", "-qam", f"owners: round {n}")
        git(human, "push", "-q")
        self.humans.append(git(human, "rev-parse", "HEAD").strip())

    def holds(self, work: Path) -> None:
        head = self.main()
        assert _is_ancestor(self.remote, self.head, head), f"main moved from {self.head} to {head}, not forward"
        self.head = head
        for sha in self.humans:
            assert _is_ancestor(self.remote, sha, "main"), f"human commit {sha[:8]} lost"
        assert git(self.remote, "rev-list", "--merges", "main") == "", "history is not linear"
        reflog = git(self.remote, "reflog", "show", "--format=%H", "main").split()
        for newer, older in zip(reflog, reflog[1:]):
            assert _is_ancestor(self.remote, older, newer), f"forced update {older[:8]} -> {newer[:8]}"
        assert git(work, "status", "--porcelain") == ""
        assert git(work, "rev-parse", "HEAD").strip() == head
        assert not list((work / ".git").glob("*.lock")) or list((work / ".git").glob("*.lock")) == \
            [work / ".git" / "meshgen-bot.lock"]
        statuses_match_rendered(self.remote)


def _is_ancestor(repo: Path, old: str, new: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", old, new], cwd=repo,
                          capture_output=True).returncode == 0


def statuses_match_rendered(remote: Path) -> None:
    """Every status file on main has the weights its rendered VirtualService routes by."""
    files = git(remote, "ls-tree", "-r", "--name-only", "main", "status/").split()
    assert files, "no status file on main"
    for path in files:
        st = yaml.safe_load(git(remote, "show", f"main:{path}"))["status"]
        name = yaml.safe_load(git(remote, "show", f"main:{path}"))["metadata"]["name"]
        app = yaml.safe_load(git(remote, "show", f"main:apps/{name}.yaml"))
        vs_path = f"rendered/dev/{app['metadata']['namespace']}/{name}/virtualservice.yaml"
        vs = yaml.safe_load(git(remote, "show", f"main:{vs_path}"))
        route = {d["destination"]["subset"]: d.get("weight", 100) for d in vs["spec"]["http"][-1]["route"]}
        weight = int(st["canaryWeight"])
        expected = {k: v for k, v in {st["stable"]: 100 - weight, st["canary"]: weight}.items() if v}
        assert route == expected, f"{path}: status says {expected}, {vs_path} routes {route}"


def recover(work: Path, history: History) -> bot.TickReport:
    """One normal tick, then everything that must hold."""
    report = bot.tick(work, push=True, lock_wait=10)
    assert not report.failed_envs
    history.holds(work)
    return report


def started(work: Path, history: History) -> None:
    """Run ticks until every rollout has a status (the first tick starts them)."""
    recover(work, history)
    assert len(git(history.remote, "ls-tree", "-r", "--name-only", "main", "status/").split()) == 3


# --- Prometheus ----------------------------------------------------------------------------


@pytest.mark.prometheus
@pytest.mark.parametrize(("mode", "message"), [
    ("refused", "failed: ConnectError"),
    ("500", "refused 'sum by"),
    ("garbage", "answered HTTP 200 that is not JSON"),
    ("truncated", "answered HTTP 200 that is not JSON"),
    ("wrong shape", "answered a malformed vector"),
])
def test_prometheus_failing_skips_the_environment_and_the_next_tick_carries_on(setup, faulty, mode, message):
    remote, work, _ = setup
    history = History(remote)
    started(work, history)
    wait_until_checks_due(work)  # every rollout's interval has passed: all are due
    faulty.mode = mode
    url = f"http://127.0.0.1:{free_port()}" if mode == "refused" else faulty.url
    before = history.main()
    proc = run_meshgen("rollout", "step", "--push", "--prometheus-url", url, cwd=work)
    assert proc.returncode == 3, proc.stderr
    assert "error: environment dev: Prometheus at http://127.0.0.1:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert history.main() == before and git(work, "status", "--porcelain") == ""
    faulty.mode = "ok"
    report = recover(work, history)
    assert {o.app for o in report.commits} >= set(TIMED)


@pytest.mark.prometheus
def test_a_slow_prometheus_makes_a_slow_tick_not_a_wrong_one(setup, faulty):
    remote, work, _ = setup
    history = History(remote)
    started(work, history)
    wait_until_checks_due(work)
    faulty.mode, faulty.delay = "slow", 1.0
    begun = time.monotonic()
    report = recover(work, history)
    assert time.monotonic() - begun >= 1.0 and faulty.requests
    assert {o.app for o in report.commits} >= set(TIMED)


# --- the remote ----------------------------------------------------------------------------


@pytest.mark.prometheus
def test_a_push_refused_by_a_hook_stays_local_and_is_decided_again_once_allowed(setup):
    remote, work, human = setup
    history = History(remote)
    started(work, history)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes to main are closed for maintenance' >&2\nexit 1\n")
    hook.chmod(0o755)
    wait_until_checks_due(work)
    before = history.main()
    proc = run_meshgen("rollout", "step", "--push", cwd=work)
    assert proc.returncode == 3, proc.stderr
    assert "error: git push origin/main was refused" in proc.stderr
    assert "pushes to main are closed for maintenance" in proc.stderr or "pre-receive hook declined" in proc.stderr
    assert history.main() == before
    unpushed = git(work, "rev-list", f"{before}..HEAD").split()
    assert unpushed  # the tick's commits wait in the clone
    hook.unlink()
    # commit times have whole seconds: a tick decided again within the same second would make
    # byte-identical commits, indistinguishable from pushing the old ones
    made = int(git(work, "log", "-1", "--format=%ct", "HEAD"))
    wait_until(lambda: time.time() >= made + 1, 3, interval=0.05, what="the next second")
    history.human_commit(human, 1)  # the remote moved meanwhile: the bot decides from there
    recover(work, history)
    for sha in unpushed:  # dropped and decided again from the remote's head, not pushed as they were
        assert not _is_ancestor(remote, sha, "main")
    steps = [s for s in git(remote, "log", "--format=%s", f"{before}..main").splitlines()]
    assert len(steps) == len({s for s in steps}), f"a step was made twice: {steps}"


@pytest.mark.prometheus
def test_a_vanished_remote_exits_3_and_the_next_tick_recovers(setup):
    remote, work, human = setup
    history = History(remote)
    started(work, history)
    gone = remote.with_name("remote.gone")
    remote.rename(gone)
    try:
        wait_until_checks_due(work)
        proc = run_meshgen("rollout", "step", "--push", cwd=work)
        assert proc.returncode == 3, proc.stderr
        assert "error: git fetch origin/main failed" in proc.stderr and "Traceback" not in proc.stderr
        assert git(work, "status", "--porcelain") == ""
    finally:
        gone.rename(remote)
    history.human_commit(human, 1)
    recover(work, history)


# --- kill -9 -------------------------------------------------------------------------------

GIT_LOCKS = ("index.lock", "HEAD.lock", "packed-refs.lock", "refs/heads/main.lock", "refs/remotes/origin/main.lock")


def kill_in_git(tick: subprocess.Popen, work: Path, timeout: float) -> bool:
    """Kill ``tick``'s process group as soon as one of git's lock files exists (watched in a
    busy loop); False when the tick ended first or ``timeout`` seconds passed."""
    locks = [os.path.join(work, ".git", name) for name in GIT_LOCKS]
    deadline = time.monotonic() + timeout
    while tick.poll() is None and time.monotonic() < deadline:
        if any(map(os.path.exists, locks)):
            os.killpg(tick.pid, signal.SIGKILL)
            return True
    if tick.poll() is None:
        os.killpg(tick.pid, signal.SIGKILL)
        return True
    return False


@pytest.mark.prometheus
def test_kill_9_of_the_tick_at_random_moments_then_one_tick_recovers(setup, faulty):
    """Each trial starts ``meshgen rollout step --push`` in its own process group, kills the
    group with SIGKILL after a random delay (the tick may be loading, asking a slow
    Prometheus, writing, committing or pushing) or, every third trial, the moment git holds
    one of its locks, then runs one normal tick; :data:`KILL_TRIALS` ticks are killed."""
    remote, work, human = setup
    history = History(remote)
    started(work, history)
    rng = random.Random(13)
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nsleep 0.2\n")  # a push takes a moment, so some kills land in it
    hook.chmod(0o755)
    seen = {"killed": 0, "finished": 0, "stale git locks": 0, "files put back": 0}
    lock_file = work / ".git" / "meshgen-bot.lock"
    length = 1.0  # seconds of a tick's work after it took the lock, as last seen
    trial = 0
    while seen["killed"] < KILL_TRIALS:  # a tick that ends before its kill time is not a trial
        trial += 1
        assert trial <= 3 * KILL_TRIALS, f"ticks kept ending before their kill: {seen}"
        if trial % 5 == 4:
            history.human_commit(human, trial)
        faulty.mode, faulty.delay = "slow", rng.choice([0.0, 0.1, 0.3])
        time.sleep(0.3)  # with the start-up of the tick, the time-policy rollouts are due again
        tick = subprocess.Popen([sys.executable, "-m", "generator", "rollout", "step", "--push"], cwd=work, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # the kill lands at a random moment of the tick proper, not of Python's start-up
        wait_until(lambda: tick.poll() is not None or lock_file.read_text().startswith(f"ticking pid={tick.pid}"),
                   30, interval=0.005, what="the tick to take its lock")
        budget = 1.5 * length + 3 * faulty.delay + 0.2  # the tick's imports come on top of what was measured
        if trial % 3 == 2:  # this time, the moment git holds one of its locks
            killed = kill_in_git(tick, work, budget)
        else:
            try:
                tick.wait(timeout=rng.uniform(0.0, budget))
                killed = False
            except subprocess.TimeoutExpired:
                os.killpg(tick.pid, signal.SIGKILL)
                killed = True
        tick.wait()
        seen["killed" if killed else "finished"] += 1
        seen["stale git locks"] += any(p.name != lock_file.name for p in (work / ".git").rglob("*.lock"))
        seen["files put back"] += bool(git(work, "status", "--porcelain"))
        faulty.mode = "ok"
        length = recover(work, history).seconds
    print(f"kill -9 trials: {seen}")
    log = git(remote, "log", "--format=%s", "main").splitlines()
    for name in TIMED:  # each step once, in order: never a double step
        moved = [line for line in log if line.startswith(f"rollout {name} (dev): ")]
        weights = [int(line.rsplit("-> ", 1)[1].split(" ")[0]) for line in reversed(moved) if "-> " in line]
        assert weights == sorted(set(weights)), f"{name} stepped twice or back: {weights}"
