"""``meshgen rollout backtest``: the bot's own decision replayed over Prometheus history.

The replay is checked from hand-made range results; end to end against a real Prometheus
serving a day-old history that ``promtool tsdb create-blocks-from openmetrics`` imported:
a healthy canary, then its 5xx rate raised. Prometheus's own request counters prove one
range query per metric for the whole span.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta

import httpx
import pytest

from generator.rollout import backtest, metrics
from generator.rollout.backtest import Series
from generator.rollout.decision import Action, Rollout
from tests.conftest import build_file_tree, run_meshgen
from tests.promfixtures import HISTORY_START as S

TARGET = metrics.Target("books", "dev", "mesh", "books", "v1", "v2")


def labels(version):
    return {"destination_service_namespace": "mesh", "destination_service_name": "books", "destination_version": version}


def test_replay_steps_holds_and_rolls_back_tick_by_tick():
    rollout = Rollout.from_spec({"stable": "v1", "canary": "v2", "route": "default", "steps": [50, 100],
                                 "interval": "1m", "analysis": {"minRequests": 10, "failureLimit": 2}})
    plan = metrics.plan(rollout, TARGET)
    times = backtest.ticks(S, S + timedelta(minutes=6), 60)
    stamp = [t.timestamp() for t in times]
    requests = [0, 3, 50, 50, 50, 50, 50]          # too few at minute 1
    success = [1, 1, 1, 0.5, math.nan, 0.5, 0.5]   # NaN: a hold; 0.5: failed checks
    results = {metrics.builtin_query("requests", plan.window): [Series(labels("v2"), list(zip(stamp, requests)))],
               metrics.builtin_query("request-success-rate", plan.window):
                   [Series(labels("v2"), list(zip(stamp, success))), Series(labels("v1"), [(s, 1.0) for s in stamp])]}
    replay = backtest.replay(rollout, TARGET, plan, results, times, "dev")
    assert [(t.time.minute, t.action, t.weight) for t in replay.ticks] == [
        (0, Action.START, 50), (1, Action.HOLD, 50), (2, Action.STEP, 100), (3, Action.FAIL_COUNT, 100),
        (4, Action.HOLD, 100), (5, Action.ROLLBACK, 0)]
    assert "fewer than minRequests 10" in replay.ticks[1].reason and "NaN" in replay.ticks[4].reason
    assert (replay.phase, replay.weight, replay.ended, replay.seconds) == ("RolledBack", 0, S + timedelta(minutes=5), 300)
    assert replay.ticks[3].check.metrics == {"requests": 50.0, "request-success-rate": 0.5}


def test_ticks_and_an_empty_span():
    assert backtest.ticks(S, S + timedelta(seconds=150), 60) == [S, S + timedelta(minutes=1), S + timedelta(minutes=2)]
    with pytest.raises(ValueError, match="--to must be after --from"):
        backtest.ticks(S, S, 60)


# --- against a real Prometheus filled with history ---------------------------------------------

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: books, namespace: mesh}
spec:
  service: {host: books, port: 80}
  versions: {v1: {labels: {version: v1}}, v2: {labels: {version: v2}}}
  routes: [{name: default, to: v1}]
  rollout: {stable: v1, canary: v2, route: default, steps: [10, 25, 50, 100], interval: 5m, analysis: {failureLimit: 2}}
"""
PLAIN = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: ratings, namespace: mesh}
spec:
  service: {host: ratings, port: 80}
  versions: {v1: {labels: {version: v1}}}
  routes: [{name: default, to: v1}]
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec: {{prometheus: {{url: "{url}"}}}}
"""


@pytest.fixture
def repo(tmp_path, history_prometheus):
    return build_file_tree(tmp_path / "repo", {"apps/books.yaml": APP, "apps/ratings.yaml": PLAIN,
                                                "environments/dev.yaml": ENV.format(url=history_prometheus.url)})


def range_queries(server) -> float:
    """How many range queries Prometheus has answered, from its own /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(
        r'^prometheus_http_requests_total\{code="200",handler="/api/v1/query_range"\} (\S+)$', text, re.M))


def backtest_cli(repo, *args):
    return run_meshgen("rollout", "backtest", "books", "--env", "dev", *args, cwd=repo)


@pytest.mark.prometheus
def test_a_healthy_span_steps_to_100_with_one_range_query_per_metric(repo, history_prometheus):
    before = range_queries(history_prometheus)
    proc = backtest_cli(repo, "--from", "2026-11-20T00:00:00Z", "--to", "2026-11-20T02:00:00Z")
    assert proc.returncode == 0, proc.stderr
    assert range_queries(history_prometheus) - before == 2  # requests and request-success-rate, whole span each
    lines = proc.stdout.splitlines()
    assert lines[0] == ("backtest of books (dev): v1 -> v2, policy health, steps 10, 25, 50, 100 every 5m; "
                        "2026-11-20T00:00:00Z .. 2026-11-20T02:00:00Z (25 ticks, 2 range queries)")
    assert [line.split()[1:5] for line in lines[1:-1]] == [
        ["start", "0", "->", "10"], ["step", "10", "->", "25"], ["step", "25", "->", "50"],
        ["step", "50", "->", "100"], ["succeed", "at", "100", "%"]]
    assert lines[-1] == "would have reached 100 % after 20m, at 2026-11-20T00:20:00Z"


@pytest.mark.prometheus
def test_a_canary_that_starts_failing_is_rolled_back_and_json_has_every_check(repo):
    proc = backtest_cli(repo, "--from", "2026-11-20T00:30:00Z", "--to", "2026-11-20T02:00:00Z", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [(t["time"][11:16], t["action"], t["weight"]) for t in data["ticks"]] == [
        ("00:30", "start", 10), ("00:35", "step", 25), ("00:40", "step", 50), ("00:45", "step", 100),
        ("00:50", "fail_count", 100), ("00:55", "rollback", 0)]
    fail = data["ticks"][-1]["check"]
    assert fail["verdict"] == "fail" and fail["metrics"]["request-success-rate"] == pytest.approx(0.7, abs=0.01)
    assert (data["phase"], data["weight"], data["seconds"], len(data["queries"])) == ("RolledBack", 0, 1500, 2)


@pytest.mark.prometheus
def test_overrides_from_the_command_line(repo):
    proc = backtest_cli(repo, "--from", "2026-11-20T00:30:00Z", "--to", "2026-11-20T01:00:00Z",
                        "--steps", "50,100", "--interval", "10m", "--min-requests", "1000000")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "steps 50, 100 every 10m" in lines[0] and "(4 ticks, 2 range queries)" in lines[0]
    assert lines[2].split()[1:5] == ["hold", "x3", "at", "50"] and "fewer than minRequests 1000000" in lines[2]
    assert "(until 2026-11-20T01:00:00Z)" in lines[2]
    assert lines[-1] == "still Progressing at 50 % when the span ends"


@pytest.mark.prometheus
@pytest.mark.parametrize("args,code,words", [
    (["--from", "yesterday-ish"], 2, "--from: 'yesterday-ish' is not a time"),
    (["--from", "2026-11-20T02:00:00Z", "--to", "2026-11-20T01:00:00Z"], 2, "--to must be after --from"),
    (["--from", "2026-11-20", "--steps", "10,50"], 2, "must end at 100"),
    (["--from", "2026-11-20", "--steps", "ten"], 2, "--steps: 'ten' is not"),
    (["--from", "2026-11-20", "--prometheus-url", "http://127.0.0.1:9"], 3, "Prometheus at http://127.0.0.1:9 failed"),
])
def test_errors(repo, args, code, words):
    proc = backtest_cli(repo, *args)
    assert proc.returncode == code and words in proc.stderr, proc.stderr


@pytest.mark.prometheus
def test_an_app_without_a_rollout_or_unknown(repo):
    proc = run_meshgen("rollout", "backtest", "ratings", "--env", "dev", "--from", "2026-11-20", cwd=repo)
    assert proc.returncode == 1 and "apps/ratings.yaml" in proc.stderr and "has no rollout in environment 'dev'" in proc.stderr
    proc = run_meshgen("rollout", "backtest", "bookz", "--env", "dev", "--from", "2026-11-20", cwd=repo)
    assert proc.returncode == 2 and "unknown app 'bookz'" in proc.stderr
