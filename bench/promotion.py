"""The cost of a promotion pipeline in a tick: N apps in three environments, one tick without
and one with ``promotion: {order: [dev, staging, prod]}``, side by side.

Usage: ``python bench/promotion.py [N]`` (default 500).

Every app rolls out v1 -> v2 in every environment, each at its first step with no check
due, so no tick asks Prometheus or commits anything and the figures are the tick's own work:
reading specs and status files, and deciding. With the pipeline a tick also reads, for each
app in staging and prod, the status of the environment before (the gate's input). Prints
seconds per tick, wall and CPU (best of 3), the tick without a pipeline as the floor, and
exits 1 when the pipeline costs more than 1.25x that floor in CPU seconds (the README
measures 1.01x).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Table, Timing, best_of  # noqa: E402
from generator.bot import bot  # noqa: E402
from generator.spec import status  # noqa: E402

#: A tick with the pipeline over one without, CPU seconds.
GOAL_RATIO = 1.25
ENVS = ("dev", "staging", "prod")
APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: app-{i}, namespace: bench}}
spec:
  service: {{host: app-{i}, port: 8080}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: default
      to: v1
  rollout: {{stable: v1, canary: v2, route: default, steps: [10, 100], interval: 1h, policy: time}}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: {env}}}
spec:
  cluster: {{name: {env}, server: https://{env}.example.com}}
  prometheus: {{url: http://127.0.0.1:9}}
"""


def build(root: Path, n: int, pipeline: bool) -> Path:
    (root / "apps").mkdir(parents=True)
    (root / "environments").mkdir()
    for env in ENVS:
        (root / "environments" / f"{env}.yaml").write_text(ENV.format(env=env))
    if pipeline:
        (root / "meshgen.yaml").write_text("promotion: {order: [dev, staging, prod], soak: 30m}\n")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    st = {"phase": "Progressing", "stable": "v1", "canary": "v2", "canaryWeight": 10, "stepIndex": 0,
          "failedChecks": 0, "lastStepTime": now}
    for i in range(n):
        name = f"app-{i:04d}"
        (root / "apps" / f"{name}.yaml").write_text(APP.format(i=f"{i:04d}"))
        for env in ENVS:
            path = root / status.status_path("status", env, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(status.dump_status(env, name, st))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                       env={"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
                            "GIT_COMMITTER_EMAIL": "b@x", "PATH": "/usr/bin:/bin"})
    return root


def best(root: Path) -> tuple[Timing, bot.TickReport]:
    return best_of(lambda: bot.tick(root))


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    base = Path(tempfile.mkdtemp(prefix="meshgen-bench-promotion-"))
    try:
        plain, plain_report = best(build(base / "plain", n, pipeline=False))
        piped, piped_report = best(build(base / "pipeline", n, pipeline=True))
        assert not plain_report.commits and not piped_report.commits
        table = Table(f"one tick, {n} apps x {len(ENVS)} environments, nothing due (best of 3)", width=34)
        table.row("floor: no pipeline", plain, note=f"{len(plain_report.outcomes)} rollouts")
        table.row("dev -> staging -> prod pipeline", piped, plain, f"{len(piped_report.outcomes)} rollouts")
        table.goal(f"a pipeline within {GOAL_RATIO:g}x the tick without in CPU seconds "
                   f"({piped.ratio(plain)[1]:.2f}x)", piped.ratio(plain)[1] <= GOAL_RATIO)
        return table.exit_code()
    finally:
        shutil.rmtree(base, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
