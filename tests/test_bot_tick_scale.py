"""The rollout tick at fleet scale: what keeps its cost down stays true.

An environment's PromQL queries are asked side by side (Prometheus evaluates each on a core
of its own); a weight that waits to be seen applied costs no walk of git's history before
its ``applyTimeout`` (one ``git log`` per app made the tick after a 5,000-app step take
minutes); the tick leaves Python's cyclic collector as it found it.
"""

from __future__ import annotations

import gc
import http.server
import json
import threading
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest

from generator.bot import bot
from generator.render import output, render
from generator.rollout import metrics
from generator.spec import status
from tests.conftest import build_file_tree
from tests.promfixtures import git
from tests.test_applied import controller, mesh_repo  # noqa: F401 (fixtures)

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: {name}, namespace: fleet}}
spec:
  service: {{host: {name}, port: 8080}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: default
      to: v1
  rollout:
    stable: v1
    canary: v2
    route: default
    interval: 10s
    analysis:
      minRequests: 10
      metrics:
        - {{name: request-success-rate, min: 0.99}}
        - {{name: request-duration-p99, max: 500}}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  prometheus: {url: http://127.0.0.1:9}
"""
APPS = ("ratings", "reviews")


class SideBySide:
    """A stand-in Prometheus that answers no query until ``expected`` are in flight at once
    (each waits at a barrier; one left alone is refused with HTTP 400 after ``patience``)."""

    def __init__(self, expected: int, patience: float = 20.0) -> None:
        barrier = threading.Barrier(expected, timeout=patience)
        self.seen: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
                outer.seen.append(query)
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    self._send(400, {"status": "error", "errorType": "bad_data", "error": "asked alone"})
                    return
                value = "100" if "increase(" in query else "1" if "histogram_quantile" not in query else "20"
                result = [{"metric": {"destination_service_namespace": "fleet", "destination_service_name": app,
                                      "destination_version": version}, "value": [0, value]}
                          for app in APPS for version in ("v1", "v2")]
                self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        outer = self
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _due_repo(tmp_path):
    """Two apps at 10 %, seen applied an hour ago: both checks are due."""
    due = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    files = {f"apps/{app}.yaml": APP.format(name=app) for app in APPS}
    root = build_file_tree(tmp_path / "repo", {**files, "environments/dev.yaml": ENV})
    for app in APPS:
        path = root / status.status_path("status", "dev", app)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(status.dump_status("dev", app, {
            "phase": "Progressing", "stable": "v1", "canary": "v2", "canaryWeight": 10, "stepIndex": 0,
            "failedChecks": 0, "lastStepTime": due, "applied": {"weight": 10, "time": due}}))
    output.write_rendering(root, render.render_repo(root))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "config")
    return root


def test_an_environments_queries_are_asked_side_by_side_and_the_collector_is_left_as_found(tmp_path):
    root = _due_repo(tmp_path)
    window = metrics.promql_duration(10)
    expected = {metrics.builtin_query(name, window, scope=metrics.Scope.of(["fleet"], ["v2"])) for name in
                (metrics.REQUESTS, metrics.SUCCESS_RATE, metrics.DURATION_P99)}
    server = SideBySide(len(expected))
    collecting: list[bool] = []
    try:
        assert gc.isenabled()
        report = bot.tick(root, prometheus=server.url, before_commit=lambda: collecting.append(gc.isenabled()))
    finally:
        server.close()
    assert report.failed_envs == {}
    assert sorted(server.seen) == sorted(expected) and report.queries == 3
    assert [(o.app, o.decision.action.value) for o in report.commits] == [("ratings", "step"), ("reviews", "step")]
    assert collecting == [False] and gc.isenabled()  # paused for the tick, then as it was
    assert git(root, "log", "--format=%s", "-2").splitlines() == [
        "rollout reviews (dev): step canary v2, 10 % -> 20 %", "rollout ratings (dev): step canary v2, 10 % -> 20 %"]


@pytest.mark.prometheus
def test_a_weight_waiting_to_be_applied_reads_no_git_history_before_its_apply_timeout(mesh_repo, monkeypatch):
    remote, work, mesh = mesh_repo("scale-hold", apps=("ratings", "reviews"))
    for app in ("ratings", "reviews"):
        mesh.freeze("dev", app)
    assert len(bot.tick(work, push=True).commits) == 2
    asked: list[str] = []
    weight_commit = bot._weight_commit
    monkeypatch.setattr(bot, "_weight_commit", lambda root, rel: asked.append(rel) or weight_commit(root, rel))
    report = bot.tick(work, push=True)
    assert [o.decision.action.value for o in report.outcomes] == ["hold", "hold"]
    assert asked == []  # nothing names or asks for the commit yet


def test_a_tick_checks_again_only_the_specs_that_changed_and_still_refuses_beside_a_broken_one(tmp_path,
                                                                                              monkeypatch):
    from generator.errors import SpecErrors
    from generator.render import checks

    for var, value in (("GIT_AUTHOR_NAME", "Ann"), ("GIT_AUTHOR_EMAIL", "ann@example.com"),
                       ("GIT_COMMITTER_NAME", "Ann"), ("GIT_COMMITTER_EMAIL", "ann@example.com")):
        monkeypatch.setenv(var, value)
    root = _due_repo(tmp_path)
    checked: list[str] = []
    check_app = checks.check_app
    monkeypatch.setattr(checks, "check_app", lambda app: checked.append(app.name) or check_app(app))
    bot.steer(root, "pause", "ratings")
    assert sorted(checked) == ["ratings", "reviews"]  # every app of the environment, the first time
    checked.clear()
    bot.steer(root, "resume", "ratings")
    assert checked == []  # both specs as they were when they passed
    broken = (root / "apps" / "reviews.yaml").read_text().replace("      to: v1\n", "      to: v3\n")
    (root / "apps" / "reviews.yaml").write_text(broken)
    git(root, "commit", "-qam", "reviews: route to v3")
    with pytest.raises(SpecErrors) as refused:
        bot.steer(root, "pause", "ratings")
    assert checked == ["reviews"] and "apps/reviews.yaml" in str(refused.value) and "v3" in str(refused.value)
    assert git(root, "log", "-1", "--format=%s").strip() == "reviews: route to v3"  # nothing committed beside it
