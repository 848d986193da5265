"""Fixtures of the rollout tests: a real Prometheus scraping a real Istio-shaped metrics
endpoint, a recording HTTP server, and git repositories with a real bare remote.

Prometheus is started once per test session (its first scrape takes a few seconds); each
test gives its traffic its own service names, so tests do not see each other's series.
Tests that need it skip, saying why, only when the ``prometheus`` binary is not installed.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from demo.fakemesh import (
    LocalPrometheus,
    MeshTraffic,
    MetricsEndpoint,
    openmetrics_history,
    prometheus_binary,
    promtool_binary,
    write_history,
)
from tests.conftest import require_loopback

#: The start of the filled history of :func:`history_prometheus`.
HISTORY_START = datetime(2026, 11, 20, tzinfo=timezone.utc)


NO_PROMETHEUS = "the prometheus binary is not installed (apt-get install prometheus; CI installs it)"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``prometheus`` is skipped, with the reason, when the binary is missing."""
    if item.get_closest_marker("prometheus") and not prometheus_binary():
        pytest.skip(NO_PROMETHEUS)


@pytest.fixture(scope="session")
def mesh_traffic() -> Iterator[MeshTraffic]:
    """Istio-shaped counters, served at a local ``/metrics`` endpoint for the session."""
    require_loopback()
    traffic = MeshTraffic()
    endpoint = MetricsEndpoint(traffic)
    traffic.endpoint = endpoint  # type: ignore[attr-defined]
    yield traffic
    endpoint.close()


@pytest.fixture(scope="session")
def prometheus(mesh_traffic: MeshTraffic) -> Iterator[LocalPrometheus]:
    """A real Prometheus on 127.0.0.1 scraping :func:`mesh_traffic` every second."""
    if not prometheus_binary():
        pytest.skip(NO_PROMETHEUS)
    require_loopback()
    server = LocalPrometheus([mesh_traffic.endpoint.address])  # type: ignore[attr-defined]
    try:
        server.wait_for_scrape()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def history_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    """A real Prometheus serving a filled history (imported by ``promtool tsdb
    create-blocks-from openmetrics``), scraping nothing: books v1 and v2 (namespace mesh) at
    30 requests per second, 20 ms, from :data:`HISTORY_START` - 10 min to + 2 h; from
    :data:`HISTORY_START` + 47 min v2 answers 30 % 5xx."""
    if not prometheus_binary() or not promtool_binary():
        pytest.skip("prometheus and promtool are not installed (apt-get install prometheus; CI installs it)")
    require_loopback()
    healthy = {("mesh", "books", "v1"): (30.0, 0.0, 20.0), ("mesh", "books", "v2"): (30.0, 0.0, 20.0)}
    failing = {("mesh", "books", "v1"): (30.0, 0.0, 20.0), ("mesh", "books", "v2"): (30.0, 0.3, 20.0)}
    workdir = tmp_path_factory.mktemp("history-prometheus")
    start = HISTORY_START.timestamp()
    write_history(workdir, openmetrics_history([(0, healthy), (600 + 47 * 60, failing)], start - 600, start + 7200))
    server = LocalPrometheus([], workdir=workdir, retention="3650d")
    try:
        yield server
    finally:
        server.stop()


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.3, what: str = "") -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


def wait_until_checks_due(work: Path, timeout: float = 10.0) -> None:
    """Wait until every progressing rollout of the config repository ``work`` has its next check
    due (:func:`generator.rollout.decision.next_check` from its committed status) on the bot's
    clock (:func:`generator.bot.bot.utcnow`, whole seconds): the event a fixed sleep of one
    interval stood for, and no longer than it takes."""
    from generator.bot import bot
    from generator.rollout import decision

    due = []
    for path in sorted((work / "status").glob("*/*.yaml")):
        status = (yaml.safe_load(path.read_text()) or {}).get("status")
        spec = yaml.safe_load((work / "apps" / f"{path.stem}.yaml").read_text())["spec"].get("rollout")
        when = decision.next_check(spec, status) if spec and status else None
        if when is not None:
            due.append(when)
    if due:
        latest = max(due)
        wait_until(lambda: bot.utcnow() >= latest, timeout, interval=0.02, what=f"the checks due at {latest}")


class Recorder:
    """A local HTTP server recording each request (method, path, headers, body).

    ``answers`` is a list of HTTP statuses to give, in order (then 200 for ever);
    ``body`` is what a 200 answers.
    """

    def __init__(self, answers: list[int] | None = None, body: bytes = b"ok") -> None:
        self.requests: list[dict] = []
        self.answers = list(answers or [])
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                recorder.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers), "body": data})
                status = recorder.answers.pop(0) if recorder.answers else 200
                payload = body if status == 200 else json.dumps({"status": "error", "errorType": "unavailable",
                                                                  "error": "try later"}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder() -> Iterator[Callable[..., Recorder]]:
    """A factory of :class:`Recorder` servers, all closed after the test."""
    require_loopback()
    made: list[Recorder] = []

    def make(*args, **kwargs) -> Recorder:
        made.append(Recorder(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; return its stdout (fails the test on a non-zero exit)."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr}")
    return proc.stdout


def clone(remote: Path, path: Path) -> Path:
    """A clone of ``remote`` at ``path`` on branch main."""
    git(path.parent, "clone", "-q", "-b", "main", str(remote), str(path))
    return path


@pytest.fixture
def git_remote(tmp_path: Path) -> Callable[[Path], tuple[Path, Path]]:
    """``make(tree)``: commit ``tree`` (a folder) as the first commit of a new bare remote
    ``tmp_path/remote.git`` (branch main) and return ``(remote, clone)``."""

    def make(tree: Path) -> tuple[Path, Path]:
        remote = tmp_path / "remote.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
        git(tree, "init", "-q", "-b", "main")
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", "Initial config")
        git(tree, "remote", "add", "origin", str(remote))
        git(tree, "push", "-q", "-u", "origin", "main")
        return remote, tree

    return make
