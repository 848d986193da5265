"""Gates: which webhooks a tick asks and what their answers do (pure, by table), the HTTP side
against a real loopback server, and the bot's commits on real git with gates answering."""

from __future__ import annotations

import http.server
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from generator.bot import bot
from generator.bot import gates as bot_gates
from generator.render import output, render
from generator.rollout import decision, gates
from generator.rollout.decision import Action, Check, Rollout, Verdict
from generator.rollout.gates import Gate, GateResult
from tests.conftest import build_file_tree, require_loopback, run_meshgen
from tests.promfixtures import git

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
ROLLOUT = Rollout.from_spec({"stable": "v1", "canary": "v2", "route": "default", "steps": [50, 100],
                             "interval": "10s"})
PASS = Check(Verdict.PASS, {"requests": 100.0}, "all metrics within bounds")


def gate(kind: str, name: str = "g", on_failure: str | None = None) -> Gate:
    return Gate.from_spec({"name": name, "kind": kind, "url": "http://127.0.0.1:9/x",
                           **({"onFailure": on_failure} if on_failure else {})})


def status(phase="Progressing", weight=50, **extra):
    return {"phase": phase, "stable": "v1", "canary": "v2", "canaryWeight": weight, "stepIndex": 0,
            "failedChecks": 0, "lastStepTime": decision.format_time(T0), **extra}


ALL = [gate(k, k) for k in gates.KINDS]
LATER = T0 + timedelta(seconds=10)


@pytest.mark.parametrize("current,now,kinds", [
    (None, T0, ["pre-rollout"]),
    (status(), T0, []),                                      # no check due yet: nothing asked
    (status(), LATER, ["step", "confirm-promotion", "rollback"]),   # the next step is 100 %
    (status(weight=100), LATER, ["step", "rollback"]),       # at 100 % the promotion is done
    (status("Paused"), LATER, []),
    (status("Succeeded", 100), LATER, []),
    (status("Waiting", 0), T0, ["pre-rollout"]),
])
def test_due(current, now, kinds):
    assert [g.kind for g in gates.due(ALL, ROLLOUT, current, now)] == kinds


def test_no_pre_rollout_gate_while_the_pipeline_holds_the_pair():
    from generator.rollout.promotion import Admission
    assert gates.due(ALL, ROLLOUT, None, T0, Admission(False, (), "waiting")) == []


def test_defaults_and_refusals():
    assert [gate(k).on_failure for k in gates.KINDS] == ["hold", "fail", "hold", None, None]
    with pytest.raises(ValueError, match="a post-rollout gate takes no onFailure"):
        gate("post-rollout", on_failure="fail")
    with pytest.raises(ValueError, match="used twice"):
        gates.gates_of({"gates": [{"name": "a", "kind": "step", "url": "http://x"},
                                  {"name": "a", "kind": "rollback", "url": "http://x"}]})


def result(kind, ok, on_failure=None, detail=None):
    return GateResult(gate(kind, f"{kind}-gate", on_failure), ok, detail or ("HTTP 200" if ok else "HTTP 503"))


@pytest.mark.parametrize("results,verdict,reason", [
    ([], Verdict.PASS, "all metrics within bounds"),
    ([result("step", True)], Verdict.PASS, "all metrics within bounds"),
    ([result("step", False)], Verdict.FAIL, "gate step-gate: HTTP 503"),
    ([result("step", False, "hold")], Verdict.INCONCLUSIVE, "gate step-gate holds: HTTP 503"),
    ([result("confirm-promotion", False)], Verdict.INCONCLUSIVE, "gate confirm-promotion-gate holds: HTTP 503"),
    ([result("confirm-promotion", False, "fail", "timed out after 1s")], Verdict.FAIL,
     "gate confirm-promotion-gate: timed out after 1s"),
    ([result("post-rollout", False)], Verdict.PASS, "all metrics within bounds"),
])
def test_fold(results, verdict, reason):
    folded = gates.fold(PASS, results)
    assert (folded.verdict, folded.reason) == (verdict, reason)
    assert folded.metrics == PASS.metrics


def test_a_failed_metric_stays_failed_and_keeps_its_reason():
    failed = Check(Verdict.FAIL, {}, "request-success-rate 0.5 < min 0.99")
    assert gates.fold(failed, [result("step", False, "hold")]) == failed
    assert gates.fold(failed, [result("step", False)]).reason == \
        "gate step-gate: HTTP 503; request-success-rate 0.5 < min 0.99"


def test_pre_rollout_gates_hold_the_start_or_roll_back_before_it():
    held = gates.decide(ROLLOUT, "dev", None, None, T0, None, [result("pre-rollout", False)])
    assert held.action is Action.WAIT and held.status == {}
    assert held.reason == "v1 -> v2 waits: pre-rollout gate pre-rollout-gate holds: HTTP 503"
    failed = gates.decide(ROLLOUT, "dev", None, None, T0, None, [result("pre-rollout", False, "fail")])
    assert failed.action is Action.ROLLBACK
    assert failed.status["phase"] == "RolledBack" and failed.status["canaryWeight"] == 0
    assert failed.status["lastCheck"]["reason"] == "pre-rollout gate pre-rollout-gate failed: HTTP 503"
    started = gates.decide(ROLLOUT, "dev", None, None, T0, None, [result("pre-rollout", True)])
    assert started.action is Action.START


def test_a_rollback_gate_answering_2xx_rolls_back_now():
    made = gates.decide(ROLLOUT, "dev", status(), PASS, LATER, None,
                        [result("rollback", True), result("step", True)])
    assert made.action is Action.ROLLBACK and made.status["canaryWeight"] == 0
    assert made.reason == "rollback v2 from 50 % to 0 %: rollback gate rollback-gate asked for it (HTTP 200)"
    kept = gates.decide(ROLLOUT, "dev", status(), PASS, LATER, None, [result("rollback", False)])
    assert kept.action is Action.STEP


def test_result_lines_never_hold_the_url():
    lines = [result("step", True).line(), result("step", False, "hold").line(), result("rollback", True).line(),
             result("post-rollout", False).line()]
    assert lines == ["Gate step-gate (step): passed, HTTP 200",
                     "Gate step-gate (step): failed, holds, HTTP 503",
                     "Gate rollback-gate (rollback): asked for a rollback, HTTP 200",
                     "Gate post-rollout-gate (post-rollout): failed (recorded only), HTTP 503"]
    assert not any("127.0.0.1" in line for line in lines)


# --- HTTP, against a real loopback server ----------------------------------------------------


class GateServer:
    """A local HTTP server that records each POST and answers from a script of
    ``(status, delay seconds)``, then ``default`` for ever."""

    def __init__(self, script: list[tuple[int, float]] | None = None, default: int = 200) -> None:
        self.requests: list[dict] = []
        self.script = list(script or [])
        self.default = default
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append({"path": self.path, "json": json.loads(body or b"null"),
                                        "type": self.headers.get("Content-Type")})
                code, delay = server.script.pop(0) if server.script else (server.default, 0.0)
                time.sleep(delay)
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (a timeout)

            def log_message(self, *args: object) -> None:
                pass

        require_loopback()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def kinds(self) -> list[str]:
        return [r["json"]["kind"] for r in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def gate_server():
    made: list[GateServer] = []

    def make(*args, **kwargs) -> GateServer:
        made.append(GateServer(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_a_gate_posts_its_json_payload_and_2xx_passes(gate_server):
    server = gate_server([(204, 0.0), (503, 0.0)])
    g = Gate.from_spec({"name": "load-test", "kind": "step", "url": server.url + "/gate?token=${GATE_TOKEN}",
                        "timeout": "2s", "metadata": {"type": "load", "cmd": "hey -z 1m http://books"}})
    body = gates.payload(g, "books", "mesh", "dev", ROLLOUT, status())
    assert bot_gates.call(g, body, environ={"GATE_TOKEN": "s3cret"}) == GateResult(g, True, "HTTP 204")
    assert bot_gates.call(g, body, environ={"GATE_TOKEN": "s3cret"}) == GateResult(g, False, "HTTP 503")
    sent = server.requests[0]
    assert sent["path"] == "/gate?token=s3cret" and sent["type"] == "application/json"
    assert sent["json"] == {"name": "load-test", "kind": "step", "app": "books", "namespace": "mesh", "env": "dev",
                            "stable": "v1", "canary": "v2", "weight": 50, "phase": "Progressing",
                            "metadata": {"cmd": "hey -z 1m http://books", "type": "load"}}


def test_a_slow_gate_times_out_and_an_unset_variable_or_a_dead_port_fails(gate_server):
    server = gate_server([(200, 2.0)])
    slow = Gate.from_spec({"name": "slow", "kind": "step", "url": server.url, "timeout": "300ms"})
    assert bot_gates.call(slow, {}) == GateResult(slow, False, "timed out after 300ms")
    secret = Gate.from_spec({"name": "secret", "kind": "step", "url": server.url + "/?t=${NOT_SET_ANYWHERE}"})
    assert bot_gates.call(secret, {}, environ={}) == GateResult(secret, False, "variable NOT_SET_ANYWHERE is not set")
    dead = Gate.from_spec({"name": "dead", "kind": "step", "url": "http://127.0.0.1:9/"})
    found = bot_gates.call(dead, {})
    assert not found.ok and found.detail.startswith("could not be reached (")


class SlowServer:
    """A local HTTP server whose every answer misbehaves in one way (``mode``): ``drip`` says
    ``Content-Length: 100000`` then sends one byte every 0.2 s (100 of them); ``sleep`` answers nothing for
    40 s; ``huge`` and ``huge-chunked`` send 1 GiB of zeros (with a Content-Length, or chunked).
    ``sent`` counts the body bytes it managed to write; closing it stops every answer."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent = 0
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    server.answer(self)
                except OSError:
                    pass  # the client gave up

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, handler) -> None:
        if self.mode == "sleep":
            self.stop.wait(40)
            return
        handler.send_response(200)
        if self.mode == "drip":
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            while not self.stop.wait(0.2) and self.sent < 100:  # at most 20 s
                handler.wfile.write(b" ")
                handler.wfile.flush()
                self.sent += 1
            return
        block = bytes(1 << 16)
        total = 1 << 30
        if self.mode == "huge":
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for _ in range(total // len(block)):
            if self.stop.is_set():
                return
            data = block if self.mode == "huge" else b"%x\r\n%s\r\n" % (len(block), block)
            handler.wfile.write(data)
            self.sent += len(block)
        if self.mode != "huge":
            handler.wfile.write(b"0\r\n\r\n")

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def slow_server():
    made: list[SlowServer] = []

    def make(mode: str) -> SlowServer:
        made.append(SlowServer(mode))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.mark.parametrize("mode", ["drip", "sleep"])
def test_a_gate_timeout_bounds_the_whole_request(slow_server, mode):
    """httpx's timeout bounds each read; a gate's timeout bounds the exchange, last byte included."""
    server = slow_server(mode)
    g = Gate.from_spec({"name": "slow", "kind": "step", "url": server.url, "timeout": "1s"})
    started = time.monotonic()
    assert bot_gates.call(g, {}) == GateResult(g, False, "timed out after 1s")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("mode", ["drip", "sleep"])
def test_the_tick_deadline_cuts_a_gate_short(slow_server, mode):
    from generator.bot.deadline import Deadline
    from generator.errors import DeadlineExceeded

    server = slow_server(mode)
    g = Gate.from_spec({"name": "load-test", "kind": "step", "url": server.url, "timeout": "30s"})
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        bot_gates.call_all([g, g], lambda _: {}, deadline=Deadline(1.0))
    assert time.monotonic() - started < 5
    assert info.value.exit_code == 3
    assert "deadline of 1 s passed while asking gate load-test (step)" in str(info.value)
    with pytest.raises(DeadlineExceeded, match="before asking gate load-test"):
        bot_gates.call(g, {}, deadline=Deadline(0.0))


@pytest.mark.parametrize("mode", ["huge", "huge-chunked"])
def test_a_huge_gate_answer_is_refused_without_reading_it(slow_server, mode):
    server = slow_server(mode)
    g = Gate.from_spec({"name": "chatty", "kind": "step", "url": server.url, "timeout": "20s"})
    found = bot_gates.call(g, {})
    assert found == GateResult(g, False, "answered more than 1 MiB (not read; a gate's status decides, "
                                         "its answer must be short)")
    server.stop.set()
    assert server.sent < 64 << 20  # of 1 GiB


@pytest.mark.parametrize("mode", ["drip", "sleep"])
def test_rollout_step_ends_at_its_deadline_while_a_gate_stalls(tmp_path, git_remote, slow_server, mode):
    server = slow_server(mode)
    remote, work = gated_repo(tmp_path, git_remote, [
        {"name": "smoke", "kind": "pre-rollout", "url": server.url + "/smoke", "timeout": "40s"}])
    started = time.monotonic()
    proc = run_meshgen("rollout", "step", "--push", "--deadline", "3s", cwd=work, timeout=60)
    assert time.monotonic() - started < 3 + 8  # the deadline, and the start of a Python process
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: the tick's deadline of 3 s passed while asking gate smoke (pre-rollout), which had not answered "
        "in full; nothing more was done (hint: raise --deadline, or find what is slow)")
    assert git(remote, "rev-list", "--count", "main").strip() == "1"


# --- the bot, on real git --------------------------------------------------------------------

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: books, namespace: mesh}}
spec:
  service: {{host: books, port: 80}}
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
    steps: [50, 100]
    interval: 1h
    policy: time
    gates: {gates}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  cluster: {name: dev, server: https://dev.example.com}
  prometheus: {url: http://127.0.0.1:9}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def gated_repo(tmp_path: Path, git_remote, items: list[dict]) -> tuple[Path, Path]:
    tree = build_file_tree(tmp_path / "bot", {"apps/books.yaml": APP.format(gates=json.dumps(items)),
                                              "environments/dev.yaml": ENV})
    output.write_rendering(tree, render.render_repo(tree))
    return git_remote(tree)


def test_the_bot_asks_each_gate_at_its_moment_and_records_the_answers(tmp_path, git_remote, gate_server,
                                                                       monkeypatch):
    server = gate_server()
    monkeypatch.setenv("GATE_TOKEN", "tok-5ecret")
    url = server.url + "/{kind}?token=${{GATE_TOKEN}}"
    remote, work = gated_repo(tmp_path, git_remote, [
        {"name": "smoke", "kind": "pre-rollout", "url": url.format(kind="pre")},
        {"name": "load-test", "kind": "step", "url": url.format(kind="step"), "timeout": "2s",
         "metadata": {"cmd": "hey -z 1m -q 10 http://books.mesh:80/"}},
        {"name": "sign-off", "kind": "confirm-promotion", "url": url.format(kind="confirm")},
        {"name": "tell-qa", "kind": "post-rollout", "url": url.format(kind="post")}])
    clock = Clock()

    def tick(seconds: float = 0) -> list[str]:
        clock.now += timedelta(seconds=seconds)
        return [o.line() for o in bot.tick(work, push=True, clock=clock).outcomes]

    server.script = [(503, 0.0)]  # smoke holds the start
    assert tick() == ["dev/books: v1 -> v2 waits: pre-rollout gate smoke holds: HTTP 503"]
    assert git(remote, "rev-list", "--count", "main").strip() == "1"
    assert tick(1) == ["dev/books: new rollout v1 -> v2: canary v2 at 50 %"]
    start = git(remote, "log", "-1", "--format=%B", "main")
    assert "Gate smoke (pre-rollout): passed, HTTP 200" in start
    server.script = [(200, 0.0), (503, 0.0)]  # load-test passes, sign-off holds the step to 100 %
    assert tick(3600) == ["dev/books: hold at 50 %: gate sign-off holds: HTTP 503"]
    server.script = [(500, 0.0)]  # load-test fails: a failed check, in the commit
    assert tick(3600) == ["dev/books: failed check 1 of 2 at 50 %: gate load-test: HTTP 500"]
    failed = git(remote, "log", "-1", "--format=%B", "main")
    assert failed.startswith("rollout books (dev): failed check 1 of 2, canary v2 stays at 50 %: gate load-test: "
                             "HTTP 500")
    assert "Gate load-test (step): failed, fails the check, HTTP 500" in failed
    assert "Gate sign-off (confirm-promotion): passed, HTTP 200" in failed
    assert tick(3600)[0] == "dev/books: step v2 50 % -> 100 %"
    assert tick(3600)[0] == "dev/books: rollout of v2 succeeded at 100 %"
    done = git(remote, "log", "-1", "--format=%B", "main")
    assert "Gate load-test (step): passed, HTTP 200" in done and "Gate tell-qa (post-rollout): passed, HTTP 200" in done
    assert server.kinds() == ["pre-rollout", "pre-rollout", "step", "confirm-promotion", "step", "confirm-promotion",
                              "step", "confirm-promotion", "step", "post-rollout"]
    assert {r["path"].split("?")[1] for r in server.requests} == {"token=tok-5ecret"}
    assert server.requests[-1]["json"]["phase"] == "Succeeded" and server.requests[-1]["json"]["weight"] == 100
    # the secret is never written anywhere: not in a commit, not in a status file
    assert "tok-5ecret" not in git(remote, "log", "-p", "main")


def test_a_rollback_gate_rolls_back_and_a_failing_pre_rollout_gate_with_fail_never_starts(tmp_path, git_remote,
                                                                                          gate_server):
    server = gate_server(default=404)
    remote, work = gated_repo(tmp_path, git_remote, [
        {"name": "big-red-button", "kind": "rollback", "url": server.url + "/rollback"}])
    clock = Clock()
    bot.tick(work, push=True, clock=clock)
    clock.now += timedelta(hours=1)
    assert [o.decision.action for o in bot.tick(work, push=True, clock=clock).commits] == [Action.STEP]
    server.default = 200
    clock.now += timedelta(hours=1)
    report = bot.tick(work, push=True, clock=clock)
    assert [o.decision.action for o in report.commits] == [Action.ROLLBACK]
    assert git(remote, "log", "-1", "--format=%s", "main").strip() == (
        "rollout books (dev): rollback canary v2, 100 % -> 0 %: rollback gate big-red-button asked for it (HTTP 200)")
    st = yaml.safe_load(git(remote, "show", "main:status/dev/books.yaml"))["status"]
    assert (st["phase"], st["canaryWeight"]) == ("RolledBack", 0)


def test_gate_output_never_prints_the_url(tmp_path, git_remote, gate_server):
    server = gate_server(default=500)
    remote, work = gated_repo(tmp_path, git_remote, [
        {"name": "smoke", "kind": "pre-rollout", "url": server.url + "/?key=${SMOKE_KEY}", "onFailure": "fail"}])
    proc = run_meshgen("rollout", "step", "--push", cwd=work, env={"SMOKE_KEY": "k3y-value"})
    assert proc.returncode == 0, proc.stderr
    assert "dev/books: rollback v2 from 0 % to 0 %: pre-rollout gate smoke failed: HTTP 500" in proc.stdout
    printed = proc.stdout + proc.stderr + git(remote, "log", "-p", "--author=meshgen-bot", "main")
    assert "k3y-value" not in printed and server.url not in printed and "Gate smoke" in printed


@pytest.mark.parametrize("items,expected", [
    ([{"name": "a", "kind": "step", "url": "http://x/"}, {"name": "a", "kind": "rollback", "url": "http://y/"}],
     "error: gate name 'a' is used twice (gates 1 and 2) (hint: give each gate its own name)"),
    ([{"name": "a", "kind": "post-rollout", "url": "http://x/", "onFailure": "hold"}],
     "error: gate 'a': a post-rollout gate takes no onFailure (it is recorded only) (hint: remove onFailure)"),
    ([{"name": "a", "kind": "step", "url": "http://x/?t=$TOKEN"}],
     "error: gate 'a': the url holds a `$` that is not a ${NAME} reference"),
    ([{"name": "a", "kind": "stepp", "url": "http://x/"}], "'stepp' is not one of"),
    ([{"name": "a", "kind": "step", "url": "ftp://x/"}], "does not match"),
])
def test_bad_gates_are_refused_by_check(tmp_path, items, expected):
    tree = build_file_tree(tmp_path, {"apps/books.yaml": APP.format(gates=json.dumps(items)),
                                      "environments/dev.yaml": ENV})
    proc = run_meshgen("check", cwd=tree)
    assert proc.returncode == 1
    assert expected in proc.stderr, proc.stderr
    assert proc.stderr.startswith("apps/books.yaml:")
