"""Rollout history of a long-lived repository: N bot commits, rebuilt by ``meshgen rollout history``.

Usage: ``python bench/history.py [N]`` (default 10,000; goal: under 5 s).

Builds, with one ``git fast-import`` run, a config repository whose ``status/`` has N commits
by the bot: 40 apps in 2 environments, rollout after rollout (start, steps, failed checks,
rollbacks, successes), each status file the decision function's own output. Then prints,
side by side:

  * the floor: what any reader of this history must pay in git -- one ``git log --raw`` over
    ``status/`` and one ``git cat-file --batch`` of every distinct status blob, no parsing;
  * ``read_history``: the same through GitPython, plus parsing each status and rebuilding
    every timeline (what ``meshgen rollout history`` does before printing);
  * their ratio; and the command itself (``meshgen rollout history --output json``) as a
    subprocess, interpreter start included.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.bot import bot, history  # noqa: E402
from generator.rollout import decision  # noqa: E402
from generator.rollout.decision import Check, Rollout, Verdict  # noqa: E402
from generator.spec import status  # noqa: E402

APPS, ENVS = 40, ("dev", "prod")
ENV = "apiVersion: meshgen.io/v1alpha1\nkind: Environment\nmetadata: {{name: {env}}}\nspec: {{}}\n"
APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: app-{i}, namespace: mesh}}
spec:
  service: {{host: app-{i}, port: 80}}
  versions: {{v1: {{labels: {{version: v1}}}}, v2: {{labels: {{version: v2}}}}}}
  routes: [{{name: default, to: v1}}]
  rollout: {{stable: v1, canary: v2, route: default, steps: [10, 25, 50, 100], interval: 1m}}
"""


def build(root: Path, commits: int) -> int:
    """A repository with ``commits`` bot commits under status/; returns how many it made."""
    rng = random.Random(7)
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    files = {f"apps/app-{i}.yaml": APP.format(i=i) for i in range(APPS)}
    files.update({f"environments/{env}.yaml": ENV.format(env=env) for env in ENVS})
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stream: list[bytes] = []

    def data(payload: bytes) -> None:
        stream.append(b"data %d\n" % len(payload) + payload + b"\n")

    stream.append(b"commit refs/heads/main\n")
    stream.append(b"author Ada Platform <ada@example.com> %d +0000\n" % int(start.timestamp()))
    stream.append(b"committer Ada Platform <ada@example.com> %d +0000\n" % int(start.timestamp()))
    data(b"The config")
    for rel, text in files.items():
        stream.append(b"M 100644 inline " + rel.encode() + b"\n")
        data(text.encode())
    states: dict[tuple[str, str], dict | None] = {}
    canaries: dict[tuple[str, str], int] = {}
    now = start
    made = 0
    while made < commits:
        env, app = rng.choice(ENVS), f"app-{rng.randrange(APPS)}"
        key = (env, app)
        version = canaries.setdefault(key, 2)
        rollout = Rollout.from_spec({"stable": f"v{version - 1}", "canary": f"v{version}", "route": "default",
                                     "steps": [10, 25, 50, 100], "interval": "1m"})
        old = states.get(key)
        if old and old.get("phase") in (decision.SUCCEEDED, decision.ROLLED_BACK):
            canaries[key] = version = version + 1
            rollout = Rollout.from_spec({"stable": f"v{version - 1}", "canary": f"v{version}", "route": "default",
                                         "steps": [10, 25, 50, 100], "interval": "1m"})
        now += timedelta(seconds=rng.randint(60, 120))
        good = rng.random() < 0.85
        check = Check(Verdict.PASS if good else Verdict.FAIL,
                      {"requests": float(rng.randint(200, 900)), "request-success-rate": 1.0 if good else 0.93},
                      "all metrics within bounds" if good else "request-success-rate 0.93 < min 0.99")
        made_decision = decision.decide(rollout, env, old, check, now)
        if not decision.committed_change(old, made_decision.status):
            continue
        states[key] = made_decision.status
        stamp = int(now.timestamp())
        message = bot.commit_message(env, app, old, made_decision, 2).encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"author meshgen-bot <meshgen-bot@meshgen.invalid> %d +0000\n" % stamp)
        stream.append(b"committer meshgen-bot <meshgen-bot@meshgen.invalid> %d +0000\n" % stamp)
        data(message)
        stream.append(f"M 100644 inline status/{env}/{app}.yaml\n".encode())
        data(status.dump_status(env, app, made_decision.status))
        made += 1
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=b"".join(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=root, check=True)
    return made


def floor(root: Path) -> float:
    """One git log --raw over status/ and one cat-file --batch of every distinct blob."""
    started = time.perf_counter()
    log = subprocess.run(["git", "log", "--raw", "--no-abbrev", "--format=%H", "--", "status/"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    blobs = {line.split()[3] for line in log.splitlines() if line.startswith(":")}
    subprocess.run(["git", "cat-file", "--batch"], cwd=root, input="\n".join(sorted(blobs)) + "\n",
                   capture_output=True, text=True, check=True)
    return time.perf_counter() - started


def main() -> int:
    commits = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    base = Path(tempfile.mkdtemp(prefix="meshgen-bench-history-"))
    try:
        root = base / "repo"
        started = time.perf_counter()
        made = build(root, commits)
        print(f"built {made} bot commits over {APPS} apps x {len(ENVS)} environments in "
              f"{time.perf_counter() - started:.1f} s (git fast-import)")
        floor(root)  # warm the page cache for both
        git_floor = min(floor(root) for _ in range(3))
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            found = history.read_history(root)
            runs.append(time.perf_counter() - started)
        best = min(runs)
        events = sum(len(t.events) for t in found)
        print(f"{'git floor (log --raw + cat-file --batch)':<44} {git_floor:7.2f} s")
        print(f"{'read_history (GitPython, parse, timelines)':<44} {best:7.2f} s   "
              f"ratio {best / git_floor:4.1f}x   {len(found)} rollouts, {events} events")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "generator", "rollout", "history", "--output", "json"],
                              cwd=root, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
        cli = time.perf_counter() - started
        assert proc.returncode == 0, proc.stderr
        print(f"{'meshgen rollout history --output json':<44} {cli:7.2f} s   ratio {cli / git_floor:4.1f}x "
              f"(interpreter start included)")
        ok = best / git_floor <= 3.0
        print(f"goal: read_history within 3x the git floor: {'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
