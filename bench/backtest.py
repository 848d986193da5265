"""Backtest of a day: 24 h at a 1 m interval, against a real Prometheus filled with that day.

Usage: ``python bench/backtest.py [HOURS]`` (default 24; goal: under 5 s).

Writes a day of Istio-shaped counters for two versions of one service, scraped every 15 s
(the canary serves too few requests to be promoted for the first 23 hours, so every one of
the 1,441 ticks is replayed), imports it with ``promtool tsdb create-blocks-from
openmetrics``, starts the real ``prometheus`` on it, and prints side by side:

  * the floor: the same range queries sent straight to Prometheus's HTTP API (what
    Prometheus itself takes to evaluate 1,441 steps of each query);
  * ``meshgen rollout backtest`` in process: the queries, then 1,441 verdicts and decisions;
  * their ratio, and the command as a subprocess, interpreter start included,
in wall and CPU seconds (best of 3; the command once). Exits 1 when the command takes 5 s or
more, or the in-process backtest more than 3x the floor's wall time (the queries dominate: the
replay of 1,441 decisions costs a fraction of them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import Table, best_of  # noqa: E402
from demo.fakemesh import (  # noqa: E402
    LocalPrometheus,
    openmetrics_history,
    prometheus_binary,
    promtool_binary,
    write_history,
)
from generator.bot import backtest  # noqa: E402
from generator.rollout import metrics  # noqa: E402
from generator.rollout.decision import Rollout  # noqa: E402

START = datetime(2026, 11, 20, tzinfo=timezone.utc)
APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: books, namespace: mesh}
spec:
  service: {host: books, port: 80}
  versions: {v1: {labels: {version: v1}}, v2: {labels: {version: v2}}}
  routes: [{name: default, to: v1}]
  rollout:
    stable: v1
    canary: v2
    route: default
    steps: [10, 25, 50, 100]
    interval: 1m
    analysis: {minRequests: 100, metrics: [{name: request-duration-p99, max: 500}]}
"""
GOAL_SECONDS, GOAL_RATIO = 5.0, 3.0
ENV = "apiVersion: meshgen.io/v1alpha1\nkind: Environment\nmetadata: {{name: dev}}\nspec: {{prometheus: {{url: \"{url}\"}}}}\n"


def main() -> int:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 24.0
    if not prometheus_binary() or not promtool_binary():
        print("needs prometheus and promtool (apt-get install prometheus)", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="meshgen-bench-backtest-"))
    server = None
    try:
        span = hours * 3600
        trickle = {("mesh", "books", "v1"): (50.0, 0.0, 30.0), ("mesh", "books", "v2"): (1.0, 0.0, 30.0)}
        full = {("mesh", "books", "v1"): (50.0, 0.0, 30.0), ("mesh", "books", "v2"): (50.0, 0.0, 30.0)}
        started = time.perf_counter()
        text = openmetrics_history([(0, trickle), (600 + span - 3600, full)], START.timestamp() - 600,
                                   START.timestamp() + span, scrape=15.0)
        write_history(base / "prometheus", text)
        print(f"history: {hours:g} h scraped every 15 s, {text.count(chr(10)):,} samples, imported by promtool in "
              f"{time.perf_counter() - started:.1f} s")
        server = LocalPrometheus([], workdir=base / "prometheus", retention="3650d")
        repo = base / "repo"
        (repo / "apps").mkdir(parents=True)
        (repo / "environments").mkdir()
        (repo / "apps" / "books.yaml").write_text(APP)
        (repo / "environments" / "dev.yaml").write_text(ENV.format(url=server.url))
        end = START + timedelta(seconds=span)

        rollout = Rollout.from_spec({"stable": "v1", "canary": "v2", "route": "default", "interval": "1m",
                                     "analysis": {"metrics": [{"name": "request-duration-p99", "max": 500}]}})
        plan = metrics.plan(rollout, metrics.Target("books", "dev", "mesh", "books", "v1", "v2"))

        def floor() -> None:
            for promql in plan.queries:
                httpx.get(f"{server.url}/api/v1/query_range", params={
                    "query": promql, "start": START.timestamp(), "end": end.timestamp(), "step": "60"},
                    timeout=60).raise_for_status()

        floor()
        prometheus_only, _ = best_of(floor)
        best, replay = best_of(lambda: backtest.run_backtest(repo, "books", "dev", START, end))
        ticks = int(span // 60) + 1
        cli, proc = best_of(lambda: subprocess.run(
            [sys.executable, "-m", "generator", "rollout", "backtest", "books", "--env", "dev", "--from",
             START.isoformat(), "--to", end.isoformat(), "--output", "json"],
            cwd=repo, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))), runs=1)
        assert proc.returncode == 0, proc.stderr
        # the CPU of the floor is Prometheus's, not this process's: the wall ratio is the one to read
        table = Table(f"{hours:g} h at 1 m: {len(plan.queries)} range queries x {ticks:,} steps")
        table.row("floor: the range queries alone (Prometheus)", prometheus_only)
        table.row("run_backtest: queries + replay", best, prometheus_only,
                  f"{len(replay.ticks)} ticks acted, {replay.phase} at {replay.weight} %")
        table.row("meshgen rollout backtest (subprocess)", cli, prometheus_only, "interpreter start included")
        table.goal(f"run_backtest within {GOAL_RATIO:g}x the queries' wall time ({best.ratio(prometheus_only)[0]:.1f}x)",
                   best.ratio(prometheus_only)[0] <= GOAL_RATIO)
        table.goal(f"meshgen rollout backtest under {GOAL_SECONDS:g} s ({cli.wall:.2f} s)", cli.wall < GOAL_SECONDS)
        return table.exit_code()
    finally:
        if server:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
