"""The fault suite of meshgen's own edges: overlapping ticks, links and odd files, hostile
Prometheus answers and templates, deadlines, bad status times, secrets, publish's refusals.

Every case runs the real command line against real git repositories (a bare repository as the
remote), a real Prometheus or a small loopback server for answers no Prometheus gives, and
asserts: the exit code of DESIGN's table, a message naming the cause, no traceback, nothing
outside the repository touched, and every pushed commit passing ``meshgen check``.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.bot import bot
from generator.bot.prometheus import Prometheus
from generator.errors import DeadlineExceeded, PrometheusError, redact
from generator.render import output, render
from tests.conftest import ROOT, build_file_tree, require_loopback, run_meshgen
from tests.promfixtures import clone, git, wait_until, wait_until_checks_due

NO_PROMETHEUS = "http://127.0.0.1:9"

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
  rollout: {rollout}
"""
PLAIN_APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: reviews, namespace: shop}
spec:
  service: {host: reviews, port: 80}
  versions:
    v1: {labels: {version: v1}}
  routes:
    - name: default
      to: v1
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  cluster: {{name: dev, server: https://dev.example.com}}
  prometheus: {{url: {url}}}
"""


def rollout(**extra) -> str:
    block = {"stable": "v1", "canary": "v2", "route": "default", "steps": [20, 50, 100], "interval": "1s",
             "analysis": {"minRequests": 1, "failureLimit": 2}}
    block.update(extra)
    return json.dumps(block)


def make_repo(root: Path, url: str = NO_PROMETHEUS, namespace: str = "edges", **extra) -> Path:
    tree = build_file_tree(root, {
        "apps/ratings.yaml": APP.format(namespace=namespace, rollout=rollout(**extra)),
        "apps/reviews.yaml": PLAIN_APP,
        "environments/dev.yaml": ENV.format(url=url)})
    output.write_rendering(tree, render.render_repo(tree))
    return tree


@pytest.fixture
def pushed(tmp_path, git_remote):
    """``make(**rollout)``: a rendered config repo pushed to a bare remote; ``(remote, clone)``."""

    def make(url: str = NO_PROMETHEUS, **extra) -> tuple[Path, Path]:
        return git_remote(make_repo(tmp_path / "bot", url, **extra))

    return make


def meshgen(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    proc = run_meshgen(*args, cwd=cwd, env={"MESHGEN_NO_CACHE": "1", **(env or {})}, timeout=timeout)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` (links as their target, files as bytes), .git excluded."""
    found: dict[str, bytes | str] = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in dirs + files:
            path = Path(top) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                found[rel] = path.read_bytes()
            elif not path.is_dir():
                found[rel] = "odd"
    return found


def assert_every_commit_checks(remote: Path, tmp_path: Path) -> int:
    """Every commit on the remote's main passes ``meshgen check``; returns how many."""
    work = clone(remote, tmp_path / "verify")
    shas = git(work, "rev-list", "main").split()
    for sha in shas:
        git(work, "checkout", "-q", sha)
        proc = meshgen("check", cwd=work)
        assert proc.returncode == 0, f"commit {sha[:8]} fails check:\n{proc.stdout}\n{proc.stderr}"
    return len(shas)


# --- 1. two ticks at once in one checkout ---------------------------------------------------

def test_two_ticks_at_once_in_one_checkout_push_only_consistent_commits(pushed, tmp_path):
    remote, work = pushed(policy="time")

    def pair() -> list[subprocess.CompletedProcess]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), MESHGEN_NO_CACHE="1")
        procs = [subprocess.Popen([sys.executable, "-m", "generator", "rollout", "step", "--push"], cwd=work,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        return results

    def done() -> bool:
        for result in pair():
            assert "Traceback" not in result.stderr, result.stderr
            assert result.returncode in (0, 3), result.stderr
            if result.returncode == 3:  # only ever the lock's bounded wait, said as such
                assert "tick" in result.stderr.lower()
        return "succeeded" in git(remote, "log", "-1", "--format=%s", "main")

    wait_until(done, 60, interval=0.5, what="the rollout to succeed")
    subjects = [s for s in git(remote, "log", "--format=%s", "main").splitlines() if s.startswith("rollout ")]
    assert len(subjects) == len(set(subjects)) == 4  # start, two steps, success: none twice
    assert assert_every_commit_checks(remote, tmp_path) == 5


def test_a_status_that_disagrees_with_the_rendering_is_never_committed(pushed, monkeypatch):
    """The assertion before commit: another writer changes the status between render and commit."""
    remote, work = pushed(policy="time")
    before = git(remote, "rev-parse", "main")
    real_render = render.AppsRendering.render

    def render_then_interfere(self, pairs, statuses):
        rendering = real_render(self, pairs, statuses)
        rendering.applied[("dev", "ratings")] = ("v1", "v2", 33)  # what a concurrent writer made
        return rendering

    monkeypatch.setattr(render.AppsRendering, "render", render_then_interfere)
    with pytest.raises(Exception) as info:
        bot.tick(work, push=True)
    assert info.value.exit_code == 3
    assert "rendered route gives v1 67 % / v2 33 %" in str(info.value) and "nothing was committed" in str(info.value)
    assert git(remote, "rev-parse", "main") == before and git(work, "status", "--porcelain") == ""


# --- 2 and 9. publish ---------------------------------------------------------------------

@pytest.fixture
def deploy(tmp_path, git_remote):
    """A config repo (committed) and a bare deploy repository with a first commit on main."""
    config = make_repo(tmp_path / "config")
    git(config, "init", "-q", "-b", "main")
    git(config, "add", "-A")
    git(config, "commit", "-qm", "config")
    target = tmp_path / "deploy.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(target))
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "README").write_text("deploy\n")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "Start")
    git(seed, "push", "-q", str(target), "main")
    return config, target, seed


def test_publish_never_deletes_through_a_committed_symlink(deploy, tmp_path):
    config, target, seed = deploy
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    os.symlink(str(outside), seed / "rendered")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "link")
    git(seed, "push", "-q", str(target), "main")
    proc = meshgen("publish", "--to", str(target), "--branch", "main", cwd=config)
    assert proc.returncode == 1
    assert "rendered is a symbolic link" in proc.stderr and str(outside) in proc.stderr
    assert (outside / "precious.txt").read_text() == "keep me\n"
    assert git(target, "log", "-1", "--format=%s", "main").strip() == "link"


def test_publish_path_into_dot_git_is_a_usage_error(deploy):
    config, target, _ = deploy
    proc = meshgen("publish", "--to", str(target), "--branch", "main", "--path", ".git", cwd=config)
    assert proc.returncode == 2 and "--path .git" in proc.stderr and ".git directory" in proc.stderr
    proc = meshgen("publish", "--to", str(target), "--branch", "main", "--path", "x/.git/hooks", cwd=config)
    assert proc.returncode == 2


def test_publish_takes_a_relative_target_and_creates_new_branches(deploy, tmp_path):
    config, target, _ = deploy
    proc = meshgen("publish", "--to", "../deploy.git", "--branch", "main", cwd=config)
    assert proc.returncode == 0, proc.stderr
    assert "published" in proc.stdout and "../deploy.git" in proc.stdout
    proc = meshgen("publish", "--to", "../deploy.git", "--branch", "env/dev", "--env", "dev", cwd=config)
    assert proc.returncode == 0, proc.stderr
    assert "rendered/dev/kustomization.yaml" in git(target, "ls-tree", "-r", "--name-only", "env/dev")
    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(empty))
    proc = meshgen("publish", "--to", str(empty), "--branch", "main", cwd=config)
    assert proc.returncode == 0, proc.stderr  # a new branch named like the clone's unborn one


def test_publish_says_what_the_remote_said(deploy):
    config, target, _ = deploy
    hook = target / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is frozen until Monday' >&2\nexit 1\n")
    hook.chmod(0o755)
    proc = meshgen("publish", "--to", str(target), "--branch", "main", cwd=config)
    assert proc.returncode == 3
    assert "pre-receive hook declined" in proc.stderr and "main is frozen until Monday" in proc.stderr
    assert "keeps moving" not in proc.stderr


# --- 3. links and odd files ---------------------------------------------------------------

ODD_INPUTS = {
    "dangling spec": ("apps/gone.yaml", lambda p, out: os.symlink("nowhere.yaml", p), "dangling symbolic link"),
    "directory": ("apps/dir.yaml", lambda p, out: p.mkdir(), "is a directory"),
    "fifo": ("apps/pipe.yaml", lambda p, out: os.mkfifo(p), "is a fifo"),
    "device": ("apps/zero.yaml", lambda p, out: os.symlink("/dev/zero", p), "outside the repository"),
    "outside spec": ("apps/secret.yaml", lambda p, out: os.symlink(out, p), "outside the repository"),
    "dangling environment": ("environments/dev.yaml", lambda p, out: (p.unlink(), os.symlink("gone", p)),
                             "dangling symbolic link"),
}


@pytest.mark.parametrize("case", sorted(ODD_INPUTS))
def test_odd_inputs_are_named_errors_and_delete_nothing(case, tmp_path):
    rel, make, words = ODD_INPUTS[case]
    repo = make_repo(tmp_path / "repo")
    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: meshgen.io/v1alpha1\nkind: App\nmetadata: {name: secret}\nspec: {password: hunter2}\n")
    make(repo / rel, str(outside))
    before = snapshot(repo / "rendered")
    for command in ("render", "check"):
        proc = meshgen(command, cwd=repo, timeout=30)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"{rel}: error: " in proc.stderr and words in proc.stderr
        assert "hunter2" not in proc.stderr + proc.stdout
    assert snapshot(repo / "rendered") == before


def test_a_rendered_directory_that_links_outside_is_refused(tmp_path):
    repo = make_repo(tmp_path / "repo")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text("# Generated by meshgen from nothing; do not edit.\n")
    os.rename(repo / "rendered" / "dev", tmp_path / "old-dev")
    os.symlink(str(outside), repo / "rendered" / "dev")
    for command in ("render", "check"):
        proc = meshgen(command, cwd=repo)
        assert proc.returncode == 1 and "rendered/dev: error: is a symbolic link" in proc.stderr
    assert snapshot(outside) == {"kustomization.yaml": b"# Generated by meshgen from nothing; do not edit.\n"}


def test_explain_reads_no_rendered_file_through_a_link(tmp_path):
    repo = make_repo(tmp_path / "repo")
    os.rename(repo / "rendered" / "dev", tmp_path / "real-dev")
    os.symlink(str(tmp_path / "real-dev"), repo / "rendered" / "dev")
    proc = meshgen("explain", "reviews", "--env", "dev", cwd=repo)
    assert proc.returncode == 1 and "rendered/dev: error: is a symbolic link" in proc.stderr


def test_a_template_that_includes_a_link_out_of_the_repository_is_refused(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "secret.txt").write_text("hunter2\n")
    (repo / "templates").mkdir()
    os.symlink(str(tmp_path / "secret.txt"), repo / "templates" / "part.j2")
    template = (render.resources.templates_dir() / "destinationrule.yaml.j2").read_text()
    (repo / "templates" / "destinationrule.yaml.j2").write_text("# {% include 'part.j2' %}\n" + template)
    proc = meshgen("render", cwd=repo)
    assert proc.returncode == 1 and "templates/part.j2: error: is a symbolic link to" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_settings_paths_outside_the_repository_are_refused(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "meshgen.yaml").write_text("paths: {rendered: ../out}\n")
    proc = meshgen("render", cwd=repo)
    assert proc.returncode == 1 and "paths.rendered: '../out' is outside the repository" in proc.stderr
    assert not (tmp_path / "out").exists()


# --- 4 and 5. hostile Prometheus, deadlines -------------------------------------------------

class Loopback:
    """A local HTTP server that answers every request with ``handler(request_handler)``."""

    def __init__(self, answer) -> None:
        self.requests = 0
        server_ = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server_.requests += 1
                answer(self)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        require_loopback()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def json_answer(body: bytes):
    def answer(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return answer


@pytest.fixture
def loopback():
    made: list[Loopback] = []

    def make(answer) -> Loopback:
        made.append(Loopback(answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


WRONG_SHAPES = {
    "array": b"[]", "string": b'"x"', "number": b"42", "null": b"null",
    "data string": b'{"status": "success", "data": "x"}',
    "string in result": b'{"status": "success", "data": {"resultType": "vector", "result": ["x"]}}',
    "value not a pair": b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": 3}]}}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "error of wrong type": b'{"status": "error", "errorType": 7, "error": ["x"]}',
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_prometheus_answers_of_the_wrong_shape_are_outside_failures(case, loopback):
    server = loopback(json_answer(WRONG_SHAPES[case]))
    with Prometheus(server.url, retries=0) as client, pytest.raises(PrometheusError) as info:
        client.query("up")
    assert info.value.exit_code == 3 and f"Prometheus at {server.url}" in str(info.value)


def started_canary(pushed, url: str) -> tuple[Path, Path]:
    """A pushed repo whose rollout has started (so the next tick asks Prometheus)."""
    remote, work = pushed(url=url)
    assert bot.tick(work, push=True, prometheus=NO_PROMETHEUS).commits
    return remote, work


def test_a_wrong_shape_makes_step_exit_3_without_a_commit_and_run_go_on(pushed, loopback):
    server = loopback(json_answer(b'{"status": "success", "data": "x"}'))
    remote, work = started_canary(pushed, server.url)
    wait_until_checks_due(work)  # the 1 s interval: the next check is due
    head = git(remote, "rev-parse", "main")
    proc = meshgen("rollout", "step", "--push", cwd=work)
    assert proc.returncode == 3 and "data of type string" in proc.stderr
    assert git(remote, "rev-parse", "main") == head
    env = dict(os.environ, PYTHONPATH=str(ROOT), MESHGEN_NO_CACHE="1")
    run = subprocess.Popen([sys.executable, "-m", "generator", "rollout", "run", "--every", "200ms", "--push"],
                           cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: server.requests >= 4, 30, what="rollout run to keep ticking")
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=30)
    assert "Traceback" not in err and err.count("data of type string") >= 2
    assert git(remote, "rev-parse", "main") == head


def trickle(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    try:
        for byte in b'{"status": "success", "data": {"resultType": "vector", "result": []}}':
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.5)
    except OSError:
        pass


def test_a_trickling_prometheus_is_cut_off_by_the_request_timeout(loopback):
    server = loopback(trickle)
    started = time.monotonic()
    with Prometheus(server.url, timeout=1.5, retries=0) as client, pytest.raises(DeadlineExceeded) as info:
        client.query("up")
    assert time.monotonic() - started < 3 and "within 1.5 s" in str(info.value)


def test_the_tick_deadline_bounds_a_silent_prometheus(pushed, tmp_path):
    require_loopback()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections, never answers
    try:
        remote, work = started_canary(pushed, f"http://127.0.0.1:{listener.getsockname()[1]}")
        wait_until_checks_due(work)
        started = time.monotonic()
        proc = meshgen("rollout", "step", "--push", "--deadline", "2s", cwd=work)
        assert time.monotonic() - started < 10
        assert proc.returncode == 3 and ("did not answer within" in proc.stderr or "deadline" in proc.stderr)
    finally:
        listener.close()


def test_a_sleeping_pre_receive_hook_is_stopped_at_the_deadline(pushed):
    remote, work = pushed(policy="time")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nsleep 60\n")
    hook.chmod(0o755)
    started = time.monotonic()
    proc = meshgen("rollout", "step", "--push", "--deadline", "3s", cwd=work)
    assert time.monotonic() - started < 15
    assert proc.returncode == 3 and "did not finish within" in proc.stderr
    assert "rollout" not in git(remote, "log", "-1", "--format=%s", "main")


# --- 6. status times ----------------------------------------------------------------------

STATUS = """\
apiVersion: meshgen.io/v1alpha1
kind: RolloutStatus
metadata: {{name: ratings, environment: dev}}
status:
  phase: Progressing
  stable: v1
  canary: v2
  canaryWeight: 20
  stepIndex: 0
  failedChecks: 0
  lastStepTime: {step}
  lastCheck: {{time: {check}, verdict: pass}}
"""
GOOD_TIME = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("step,check,words", [
    ("'not a time'", GOOD_TIME, "status.lastStepTime: 'not a time' is not a time"),
    ("2026-13-01T00:00:00Z", GOOD_TIME, "status.lastStepTime: '2026-13-01T00:00:00Z' is not a time"),
    ("2026-02-30T00:00:00Z", GOOD_TIME, "is not a time: day is out of range"),
    (GOOD_TIME, "yesterday", "status.lastCheck.time: 'yesterday' is not a time"),
])
def test_bad_status_times_are_placed_errors_everywhere(step, check, words, tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "status" / "dev").mkdir(parents=True)
    (repo / "status" / "dev" / "ratings.yaml").write_text(STATUS.format(step=step, check=check))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "x")
    for args in (["render"], ["check"], ["rollout", "status"], ["rollout", "step"]):
        proc = meshgen(*args, cwd=repo)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "status/dev/ratings.yaml:" in proc.stderr and words in proc.stderr, (args, proc.stderr)


def test_a_status_time_in_the_future_is_said_not_silently_waited_for(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "status" / "dev").mkdir(parents=True)
    (repo / "status" / "dev" / "ratings.yaml").write_text(STATUS.format(step="2099-01-01T00:00:00Z", check=GOOD_TIME))
    output.write_rendering(repo, render.render_repo(repo))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "x")
    proc = meshgen("rollout", "step", cwd=repo)
    assert proc.returncode == 1
    assert "status/dev/ratings.yaml:11:" in proc.stderr and "lastStepTime 2099-01-01T00:00:00Z is in the future" in proc.stderr
    assert git(repo, "status", "--porcelain") == ""
    proc = meshgen("rollout", "status", cwd=repo)
    assert proc.returncode == 0 and "lastStepTime 2099-01-01T00:00:00Z is in the future" in proc.stderr


@pytest.mark.prometheus
def test_a_skewed_bot_clock_is_said(pushed, prometheus):
    remote, work = started_canary(pushed, prometheus.url)
    wait_until_checks_due(work)
    report = bot.tick(work, push=True, clock=lambda: bot.utcnow() + timedelta(minutes=10))
    assert not report.commits
    assert "clock is 600 s ahead of Prometheus" in str(report.failed_envs["dev"])


# --- 7. templates -------------------------------------------------------------------------

PAYLOADS = {
    "division": ("{{ 1/0 }}", "ZeroDivisionError"),
    "pop": ("{{ [].pop() }}", "IndexError: pop from empty list"),
    "range": ("{{ range(10**9)|length }}", "larger than 1000000"),
    "format": ("{{ '%s'|format(1,2) }}", "TypeError: not all arguments converted"),
    "huge string": ("{{ 'a'*10**10 }}", "would make 10000000000 characters"),
    "nested loops": ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
                     "yield more than 1000000 numbers"),
    "endless output": ("{% for i in range(99999) %}{{ 'x' * 99999 }}{% endfor %}", "output is larger than"),
}


@pytest.mark.parametrize("case", sorted(PAYLOADS))
def test_repo_template_failures_are_placed_errors(case, tmp_path):
    payload, words = PAYLOADS[case]
    repo = make_repo(tmp_path / "repo")
    template = (render.resources.templates_dir() / "destinationrule.yaml.j2").read_text()
    (repo / "templates").mkdir()
    (repo / "templates" / "destinationrule.yaml.j2").write_text(template + "\n# " + payload + "\n")
    started = time.monotonic()
    proc = meshgen("render", cwd=repo)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1
    line = template.count("\n") + 2
    assert f"templates/destinationrule.yaml.j2:{line}:1: error: template for DestinationRule failed" in proc.stderr \
        or f"templates/destinationrule.yaml.j2: error: template for DestinationRule failed" in proc.stderr, proc.stderr
    assert words in proc.stderr


@pytest.mark.parametrize("case", sorted(PAYLOADS))
def test_custom_query_template_failures_are_placed_errors(case, tmp_path):
    payload, words = PAYLOADS[case]
    metric = {"name": "errors", "query": f"sum(up) {payload}", "max": 1}
    repo = make_repo(tmp_path / "repo")
    (repo / "apps" / "ratings.yaml").write_text(APP.format(namespace="edges", rollout=rollout(
        policy="metric", analysis={"minRequests": 1, "metrics": [metric]})))
    proc = meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert "apps/ratings.yaml:" in proc.stderr and "query of metric 'errors'" in proc.stderr and words in proc.stderr


# --- 8. secrets ---------------------------------------------------------------------------

def test_credentials_in_the_prometheus_url_are_never_printed(pushed):
    remote, work = started_canary(pushed, NO_PROMETHEUS)
    wait_until_checks_due(work)
    proc = meshgen("rollout", "step", "--push", "--deadline", "10s", cwd=work,
                   env={"MESHGEN_PROMETHEUS_URL": "http://admin:PASSWORD@127.0.0.1:9/?access_token=TOKEN"})
    assert proc.returncode == 3
    assert "PASSWORD" not in proc.stderr + proc.stdout and "TOKEN" not in proc.stderr + proc.stdout
    assert "http://***@127.0.0.1:9" in proc.stderr


def test_redact_masks_userinfo_and_token_parameters():
    assert redact("see https://u:p@git.example.com/o/r.git and http://h/q?api_key=k&x=1") == \
        "see https://***@git.example.com/o/r.git and http://h/q?api_key=***&x=1"
    assert redact("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_publish_keeps_credentials_of_the_source_url_out_of_the_commit_message(deploy):
    config, target, _ = deploy
    git(config, "remote", "add", "origin", "https://x-access-token:GHTOKEN@github.com/acme/mesh-config.git")
    proc = meshgen("publish", "--to", str(target), "--branch", "main", cwd=config)
    assert proc.returncode == 0, proc.stderr
    body = git(target, "log", "-1", "--format=%B", "main")
    assert "GHTOKEN" not in body and "Source-Repository: https://***@github.com/acme/mesh-config.git" in body


@settings(max_examples=200, derandomize=True, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "ssh", "git+ssh"]),
       user=st.text(st.characters(blacklist_characters="/@?# \t\n\r:", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1),
       password=st.text(st.characters(blacklist_characters="/@?# \t\n\r", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                        min_size=6),
       host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5}){0,2}(:[0-9]{2,5})?", fullmatch=True),
       before=st.sampled_from(["", "error: ", "Prometheus at ", "cannot reach '"]),
       after=st.sampled_from(["", "/", "/api/v1/query failed", "/o/r.git': refused"]))
def test_redact_never_shows_the_userinfo_of_a_url(scheme, user, password, host, before, after):
    url = f"{scheme}://{user}:{password}@{host}"
    shown = redact(before + url + after)
    assert shown == f"{before}{scheme}://***@{host}{after}"


def test_a_slack_url_with_a_control_character_is_logged_not_fatal(pushed):
    remote, work = pushed(notify={"slack": {"webhookUrlEnv": "HOOK"}})
    proc = meshgen("rollout", "step", "--push", cwd=work, env={"HOOK": "http://exa\x01mple.invalid/services/SECRET"})
    assert proc.returncode == 0, proc.stderr
    assert "warning: Slack" in proc.stderr and "SECRET" not in proc.stderr
    assert "start canary" in git(remote, "log", "-1", "--format=%s", "main")


def test_a_slack_webhook_that_never_answers_costs_its_timeout_not_the_tick(pushed, loopback):
    def silent(handler) -> None:
        time.sleep(20)

    server = loopback(silent)
    remote, work = pushed(notify={"slack": {"webhookUrlEnv": "HOOK"}})
    started = time.monotonic()
    proc = meshgen("rollout", "step", "--push", cwd=work, env={"HOOK": f"{server.url}/services/SECRET"})
    assert time.monotonic() - started < 15
    assert proc.returncode == 0 and "warning: Slack webhook did not answer within 5 s" in proc.stderr
    assert "SECRET" not in proc.stderr and "start canary" in git(remote, "log", "-1", "--format=%s", "main")
