"""Rollout history of a long-lived repository: N bot commits, rebuilt by ``meshgen rollout history``.

Usage: ``python bench/history.py [N]`` (default 10,000; goal: the command within 3x the floor).

Builds, with one ``git fast-import`` run, a config repository whose ``status/`` has N commits
by the bot: 40 apps in 2 environments, rollout after rollout (start, steps, failed checks,
rollbacks, successes), each status file the decision function's own output. Then prints,
side by side, wall and CPU seconds (best of 3) and each one's ratio to the floor:

  * the floor: what any reader of this history must pay in git -- one ``git log --raw`` over
    ``status/`` and one ``git cat-file --batch`` of every distinct status blob, no parsing;
  * ``read_history`` cold (``MESHGEN_NO_CACHE=1``: every status blob read and parsed, as on
    the first run in a clone) and warm (the blobs parsed by an earlier run kept in
    ``.git/meshgen/``): the log, the parse and every timeline rebuilt;
  * the command itself, ``meshgen rollout history`` and ``... --output json``, as a subprocess
    with the store warm, interpreter start and imports included.

Exits 1 when the warm ``read_history`` or either command takes more than 3x the floor in CPU
seconds (wall seconds are printed too; on a shared machine they stretch with its load).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Table, best_of  # noqa: E402
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


GOAL = 3.0


def floor(root: Path) -> None:
    """One git log --raw over status/ and one cat-file --batch of every distinct blob."""
    log = subprocess.run(["git", "log", "--raw", "--no-abbrev", "--format=%H", "--", "status/"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    blobs = {line.split()[3] for line in log.splitlines() if line.startswith(":")}
    subprocess.run(["git", "cat-file", "--batch"], cwd=root, input="\n".join(sorted(blobs)) + "\n",
                   capture_output=True, text=True, check=True)


def command(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "generator", "rollout", "history", *args], cwd=root,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    assert proc.returncode == 0, proc.stderr
    return proc


def cold(root: Path) -> list:
    os.environ["MESHGEN_NO_CACHE"] = "1"
    try:
        return history.read_history(root)
    finally:
        del os.environ["MESHGEN_NO_CACHE"]


def main() -> int:
    commits = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    base = Path(tempfile.mkdtemp(prefix="meshgen-bench-history-"))
    try:
        root = base / "repo"
        built, made = best_of(lambda: build(root, commits), runs=1)
        print(f"built {made} bot commits over {APPS} apps x {len(ENVS)} environments in {built.wall:.1f} s "
              f"(git fast-import)")
        floor(root)  # warm the page cache for all
        git_floor, _ = best_of(lambda: floor(root))
        first, _ = best_of(lambda: cold(root))
        history.read_history(root)  # the parsed blobs kept for the warm runs
        warm, found = best_of(lambda: history.read_history(root))
        text, _ = best_of(lambda: command(root))
        json_out, _ = best_of(lambda: command(root, "--output", "json"))
        events = sum(len(t.events) for t in found)
        table = Table(f"{len(found)} rollouts, {events} events")
        table.row("floor: git log --raw + cat-file --batch", git_floor)
        table.row("read_history, cold (every blob parsed)", first, git_floor)
        table.row("read_history, warm (parsed blobs kept)", warm, git_floor)
        table.row("meshgen rollout history", text, git_floor, "interpreter start included")
        table.row("meshgen rollout history --output json", json_out, git_floor, "interpreter start included")
        for name, timing in (("read_history (warm)", warm), ("meshgen rollout history", text),
                             ("meshgen rollout history --output json", json_out)):
            table.goal(f"{name} within {GOAL:g}x the floor in CPU seconds "
                       f"({timing.ratio(git_floor)[1]:.2f}x)", timing.ratio(git_floor)[1] <= GOAL)
        return table.exit_code()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
