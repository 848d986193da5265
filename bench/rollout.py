"""Rollout tick at scale: N apps in active rollout, one tick, against a real Prometheus.

Usage: ``python bench/rollout.py [N]`` (default 500; the baseline is N/10).

Builds a config repository (one environment, N apps, each with a ``rollout`` block whose
check is due), a local metrics endpoint with Istio-shaped counters for both versions of each
app, and a real Prometheus scraping it every second. Then runs one ``meshgen rollout step``
tick in process for the baseline and for N apps, side by side, and prints:

  * PromQL queries sent (goal: the same for both -- one per metric per environment);
  * tick time (goal: under 10 s for 5,000 apps), of which Prometheus time, re-render time
    (the changed apps only) and commit time (writing status and rendered files, one commit
    per app, written as one pack);
  * ratios N / baseline, and the process's peak memory (``ru_maxrss``; goal: under 500 MB);
  * the floor of the commits: ``git hash-object -w --stdin-paths`` of the same files, one
    git process writing each blob once, no trees or commits (what any commit path pays);
  * and the tick right after, when no check is due (what most ticks are).

Exits 1 when a goal is missed.
"""

from __future__ import annotations

import math
import resource
import shutil
import subprocess
import sys
import tempfile
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


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    baseline = max(1, n // 10)
    if not prometheus_binary():
        print("needs the prometheus binary (apt-get install prometheus)", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="meshgen-bench-"))
    traffic = MeshTraffic()
    sizes = {"base": baseline, "full": n}
    for ns, count in sizes.items():
        for i in range(count):
            for version in ("v1", "v2"):
                traffic.set(ns, f"app-{i:04d}", version, rps=5, latency_ms=20)
    endpoint = MetricsEndpoint(traffic)
    prometheus = LocalPrometheus([endpoint.address], workdir=base / "prometheus")
    try:
        roots = {ns: build(base, ns, count, prometheus.url) for ns, count in sizes.items()}
        prometheus.wait_for_scrape(30)
        time.sleep(12)  # a full analysis window of data
        rows = {}
        for ns, root in roots.items():
            report = bot.tick(root, identity=None, deadline=math.inf)  # the cost, not the deadline, is measured
            steps = sum(1 for o in report.commits if o.decision.action.value == "step")
            rows[ns] = (sizes[ns], report.queries, report.seconds, report.query_seconds, report.render_seconds,
                        report.commit_seconds, steps)
        print(f"one rollout tick, {INTERVAL} window, health policy with p99, real Prometheus {prometheus.url}")
        print(f"{'apps':>6} {'queries':>8} {'tick s':>8} {'prom s':>8} {'render s':>9} {'commit s':>9} {'commits':>8}")
        for apps, queries, seconds, prom, rend, commit, steps in rows.values():
            print(f"{apps:>6} {queries:>8} {seconds:>8.2f} {prom:>8.2f} {rend:>9.2f} {commit:>9.2f} {steps:>8}")
        idle = bot.tick(roots["full"], deadline=math.inf)  # right after: no check is due, nothing to commit
        print(f"{n:>6} {idle.queries:>8} {idle.seconds:>8.2f} {'':>8} {'':>9} {'':>9} {len(idle.commits):>8}"
              "   (the next tick: nothing due)")
        b, f = rows["base"], rows["full"]
        ratios = " ".join(f"{f[i] / max(b[i], 1e-9):>{w}.2f}" for i, w in ((1, 8), (2, 8), (3, 8), (4, 9), (5, 9)))
        print(f"ratio  {ratios}   (apps x{f[0] / b[0]:.0f})")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        blobs = commit_floor(roots["full"])
        print(f"commit floor (git hash-object -w of the committed files): {blobs:.2f} s; "
              f"commit {f[5]:.2f} s ({f[5] / max(blobs, 1e-9):.1f}x)")
        print(f"peak memory (ru_maxrss): {peak:.0f} MB")
        ok = f[1] == b[1] and f[2] < 10 and f[6] == f[0] and peak < 500
        print("goal: queries independent of apps, tick < 10 s, every app stepped, peak < 500 MB:",
              "met" if ok else "NOT met")
        return 0 if ok else 1
    finally:
        prometheus.stop()
        endpoint.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
