"""Rollout tick at scale: N apps in active rollout, one tick, against a real Prometheus.

Usage: ``python bench/rollout.py [N] [--profile]`` (default 500; the baseline is N/10).

Builds a config repository (one environment, N apps, each with a ``rollout`` block whose
check is due), a local metrics endpoint with Istio-shaped counters for both versions of each
app, and a real Prometheus scraping it every second. Then runs one ``meshgen rollout step``
tick for the baseline and for N apps, each in a child process of its own (so the set-up's
memory and the metrics endpoint's work are not the tick's), side by side, and prints:

  * PromQL queries sent (goal: the same for both -- one per metric per environment);
  * tick time (goal: under 10 s for 5,000 apps), of which Prometheus time, re-render time
    (the changed apps only) and commit time (writing status and rendered files, one commit
    per app, written as one pack);
  * ratios N / baseline, and each tick's peak memory: the child's own ``ru_maxrss``, read
    with ``os.wait4`` (goal: under 500 MB);
  * the floor of the commits: ``git hash-object -w --stdin-paths`` of the same files, one
    git process writing each blob once, no trees or commits (what any commit path pays);
  * and the tick right after, when no check is due (what most ticks are).

``--profile`` also prints where the N-app tick's time goes: its 15 functions with the most
own time (cProfile, which slows the tick; the figures above come from a run without it).

Exits 1 when a goal is missed.
"""

from __future__ import annotations

import cProfile
import io
import json
import math
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.fakemesh import (  # noqa: E402
    LocalPrometheus,
    MeshTraffic,
    MetricsEndpoint,
    prometheus_binary,
)
from generator.bot import bot  # noqa: E402
from generator.render import output, render  # noqa: E402
from generator.spec import status  # noqa: E402

INTERVAL = "10s"
APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: app-{i}, namespace: {ns}}}
spec:
  service: {{host: app-{i}, port: 8080}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  trafficPolicy:
    tls: {{mode: ISTIO_MUTUAL}}
  routes:
    - name: default
      to: v1
      timeout: 5s
  rollout:
    stable: v1
    canary: v2
    route: default
    interval: {interval}
    analysis:
      minRequests: 10
      metrics:
        - {{name: request-success-rate, min: 0.99}}
        - {{name: request-duration-p99, max: 500}}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: bench}}
spec:
  cluster: {{name: bench, server: https://bench.example.com}}
  prometheus: {{url: {url}}}
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


def build(base: Path, ns: str, n: int, url: str) -> Path:
    root = base / ns
    (root / "apps").mkdir(parents=True)
    (root / "environments").mkdir()
    (root / "environments" / "bench.yaml").write_text(ENV.format(url=url))
    due = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for i in range(n):
        (root / "apps" / f"app-{i:04d}.yaml").write_text(APP.format(i=f"{i:04d}", ns=ns, interval=INTERVAL))
        st = {"phase": "Progressing", "stable": "v1", "canary": "v2", "canaryWeight": 10, "stepIndex": 0,
              "failedChecks": 0, "lastStepTime": due,
              "applied": {"weight": 10, "time": due}}  # seen applied: the check is due
        path = root / status.status_path("status", "bench", f"app-{i:04d}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(status.dump_status("bench", f"app-{i:04d}", st))
    output.write_rendering(root, render.render_repo(root))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bench config")
    return root


def commit_floor(root: Path) -> float:
    """Seconds git takes to write the blobs of the last tick's changed files (status and
    rendered), one ``git hash-object -w --stdin-paths``: a floor under any way of committing."""
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=root, capture_output=True,
                           text=True, check=True).stdout.split()[0]
    changed = subprocess.run(["git", "diff", "--name-only", first, "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.split()
    if not changed:
        return 0.0
    started = time.perf_counter()
    subprocess.run(["git", "hash-object", "-w", "--stdin-paths", "--no-filters"], cwd=root,
                   input="\n".join(changed) + "\n", capture_output=True, text=True, check=True)
    return time.perf_counter() - started


class SteadyTraffic(MeshTraffic):
    """:class:`MeshTraffic` whose exposition is made beside the scrapes, once a scrape interval
    (1 s), and served as made: at 10,000 series it takes longer than Prometheus's 1 s scrape
    timeout on a busy machine, which would leave the window without data. Each one costs 0.2 s
    of CPU (250,000 lines), which the mesh's own proxies would pay, not the bot's machine:
    made every half second, as before, it took 40 % of a core beside the tick being measured."""

    def __init__(self) -> None:
        super().__init__()
        self._body = b""
        self._stop = threading.Event()

    def start(self) -> None:
        self._body = MeshTraffic.exposition(self)

        def refresh() -> None:
            while not self._stop.wait(1.0):
                self._body = MeshTraffic.exposition(self)
        threading.Thread(target=refresh, name="exposition", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def exposition(self) -> bytes:
        return self._body


def run_tick(root: Path, profile: bool) -> dict:
    """One tick in this process (the child's side): its figures, and with ``profile`` the 15
    functions with the most own time."""
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    report = bot.tick(root, identity=None, deadline=math.inf)  # the cost, not the deadline, is measured
    if profiler:
        profiler.disable()
    out = io.StringIO()
    if profiler:
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(15)
    return {"queries": report.queries, "seconds": report.seconds, "prom": report.query_seconds,
            "render": report.render_seconds, "commit": report.commit_seconds,
            "commits": len(report.commits),
            "steps": sum(1 for o in report.commits if o.decision.action.value == "step"),
            "profile": out.getvalue()}


#: Runs its arguments as a child and prints, after the child's output, the child's
#: ``ru_maxrss`` from ``os.wait4``. Linux counts in a child's ``ru_maxrss`` the resident size
#: of the process it was forked from (exec keeps the larger of the two), so the tick is
#: started from this small launcher, not from the bench with its set-up in memory.
LAUNCHER = """\
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
out = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
sys.stdout.buffer.write(out + json.dumps({"exit": os.waitstatus_to_exitcode(status),
                                          "maxrss_kib": usage.ru_maxrss}).encode() + b"\\n")
"""


def tick_in_child(root: Path, profile: bool = False) -> dict:
    """Run one tick in a child process; its figures and its own peak memory (``ru_maxrss``
    from ``os.wait4``, MB)."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, __file__, "--tick", str(root),
                           *(["--profile"] if profile else [])], stdout=subprocess.PIPE, check=True)
    *lines, last = done.stdout.decode().strip().splitlines()
    waited = json.loads(last)
    if waited["exit"]:
        raise RuntimeError(f"the tick's process exited {waited['exit']}")
    figures = json.loads(lines[-1])
    figures["peak_mb"] = waited["maxrss_kib"] / 1024  # KiB on Linux
    return figures


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    profile = "--profile" in sys.argv[1:]
    if "--tick" in sys.argv[1:]:  # the child: one tick, its figures as the last line
        print(json.dumps(run_tick(Path(args[0]), profile)))
        return 0
    n = int(args[0]) if args else 500
    baseline = max(1, n // 10)
    if not prometheus_binary():
        print("needs the prometheus binary (apt-get install prometheus)", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="meshgen-bench-"))
    traffic = SteadyTraffic()
    sizes = {"base": baseline, "full": n}
    for ns, count in sizes.items():
        for i in range(count):
            for version in ("v1", "v2"):
                traffic.set(ns, f"app-{i:04d}", version, rps=5, latency_ms=20)
    traffic.start()
    endpoint = MetricsEndpoint(traffic)
    prometheus = LocalPrometheus([endpoint.address], workdir=base / "prometheus")
    try:
        roots = {ns: build(base, ns, count, prometheus.url) for ns, count in sizes.items()}
        prometheus.wait_for_scrape(30)
        time.sleep(12)  # a full analysis window of data
        rows = {ns: tick_in_child(root) for ns, root in roots.items()}
        idle = tick_in_child(roots["full"])  # right after: no check is due, nothing to commit
        b, f = rows["base"], rows["full"]
        print(f"one rollout tick, {INTERVAL} window, health policy with p99, real Prometheus {prometheus.url}; "
              "each tick in a child process")
        print(f"{'apps':>6} {'queries':>8} {'tick s':>8} {'prom s':>8} {'render s':>9} {'commit s':>9} "
              f"{'commits':>8} {'peak MB':>8}")
        for ns, row in rows.items():
            print(f"{sizes[ns]:>6} {row['queries']:>8} {row['seconds']:>8.2f} {row['prom']:>8.2f} "
                  f"{row['render']:>9.2f} {row['commit']:>9.2f} {row['steps']:>8} {row['peak_mb']:>8.0f}")
        print(f"{n:>6} {idle['queries']:>8} {idle['seconds']:>8.2f} {'':>8} {'':>9} {'':>9} {idle['commits']:>8} "
              f"{idle['peak_mb']:>8.0f}   (the next tick: nothing due)")
        keys = (("queries", 8), ("seconds", 8), ("prom", 8), ("render", 9), ("commit", 9), ("steps", 8),
                ("peak_mb", 8))
        ratios = " ".join(f"{f[k] / max(b[k], 1e-9):>{w}.2f}" for k, w in keys)
        print(f"ratio  {ratios}   (apps x{n / baseline:.0f})")
        blobs = commit_floor(roots["full"])
        print(f"commit floor (git hash-object -w of the committed files): {blobs:.2f} s; "
              f"commit {f['commit']:.2f} s ({f['commit'] / max(blobs, 1e-9):.1f}x)")
        print(f"goal beside figure: tick {f['seconds']:.2f} s < 10 s; peak {f['peak_mb']:.0f} MB < 500 MB; "
              f"queries {f['queries']} = {b['queries']}; apps stepped {f['steps']} = {n}")
        ok = f["queries"] == b["queries"] and f["seconds"] < 10 and f["steps"] == n and f["peak_mb"] < 500
        print("goal: queries independent of apps, tick < 10 s, every app stepped, peak < 500 MB:",
              "met" if ok else "NOT met")
        if profile:  # on a fresh copy of the N-app repository's first commit: the same tick again
            first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=roots["full"],
                                   capture_output=True, text=True, check=True).stdout.split()[0]
            git(roots["full"], "reset", "-q", "--hard", first)
            profiled = tick_in_child(roots["full"], profile=True)
            print(f"\nwhere the {n}-app tick's time goes (cProfile, by own time, top 15; "
                  f"{profiled['seconds']:.2f} s profiled):")
            print(profiled["profile"].rstrip())
        return 0 if ok else 1
    finally:
        prometheus.stop()
        endpoint.close()
        traffic.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
