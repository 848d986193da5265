"""``meshgen explain`` on many requests, beside the pure-simulator floor.

Usage: ``python bench/explain.py [N]`` (default 10000).

Prints, side by side in one run, for N requests against the bundled example's rendered
``reviews`` VirtualService in ``prod`` (the mesh and its gateway, with and without the
``end-user`` header, inside and outside the exposed path, paths to normalise):
  * floor: :func:`generator.routing.simulate.evaluate` on N prepared requests -- the matching
    alone;
  * explain: :meth:`generator.render.explain.Rendered.explain` on the N requests as a user
    describes them (gateway, authority and port settled, the path normalised, the answer
    built), the files read once;
  * the command: one ``meshgen explain reviews --env prod --requests FILE --output json`` process
    for all N requests (JSON lines in and out, Python's start included);
  * one process per request, as before ``--requests``: one start measured, times N.
and the ratios of each to the floor, in wall and in CPU seconds.

Exits 1 when a goal is missed: ``Rendered.explain`` within 15x the floor in CPU seconds (the
README measures 7 to 11x), and the one ``--requests`` process at least 100x faster than one
process per request.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import Table, Timing, best_of  # noqa: E402
from generator.render import explain as explain_mod  # noqa: E402
from generator.routing import simulate  # noqa: E402

#: Rendered.explain over simulate.evaluate, CPU seconds; the one --requests process over one per request.
GOAL_RATIO, GOAL_BATCH = 15.0, 100.0
PATHS = ["/reviews/1", "/reviews/2?page=3", "/admin", "/", "/x/../reviews/%31", "/reviews"]


def asks(n: int) -> list[dict]:
    rnd = random.Random(7)
    out = []
    for _ in range(n):
        ask: dict = {"uri": rnd.choice(PATHS)}
        if rnd.random() < 0.4:
            ask["headers"] = {"end-user": rnd.choice(["jason", "alice"])}
        if rnd.random() < 0.5:
            ask["gateway"] = "mesh/reviews-gateway"
        if rnd.random() < 0.2:
            ask["method"] = "POST"
        out.append(ask)
    return out


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 10000
    data = asks(n)
    rendered = explain_mod.load(ROOT, "reviews", "prod")
    http = rendered.vs["spec"]["http"]
    prepared = [rendered.request(explain_mod.Ask.from_json(a)) for a in data]

    def floor_run() -> None:
        for request in prepared:
            simulate.evaluate(http, request)

    floor, _ = best_of(floor_run)
    library, results = best_of(lambda: [rendered.explain(explain_mod.Ask.from_json(a)) for a in data])
    routes = {}
    for r in results:
        routes[r.spec_route] = routes.get(r.spec_route, 0) + 1

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("".join(json.dumps(a) + "\n" for a in data))
        lines = f.name
    try:
        command, proc = best_of(lambda: subprocess.run(
            [sys.executable, "-m", "generator", "-C", str(ROOT), "explain", "reviews", "--env", "prod",
             "--requests", lines, "--output", "json"], env=env, capture_output=True, text=True, check=True), runs=1)
    finally:
        os.unlink(lines)
    assert len(proc.stdout.splitlines()) == n
    one, _ = best_of(lambda: subprocess.run(
        [sys.executable, "-m", "generator", "-C", str(ROOT), "explain", "reviews", "--env", "prod", "--uri",
         "/reviews/1", "--output", "json"], env=env, capture_output=True, check=True), runs=1)
    per_process = Timing(one.wall * n, one.cpu * n)

    table = Table(f"{n} requests against rendered/prod/mesh/reviews/virtualservice.yaml "
                  f"(routes taken: {', '.join(f'{k}: {v}' for k, v in sorted(routes.items(), key=str))})", width=36)
    table.row("floor: simulate.evaluate", floor, note=f"{floor.wall / n * 1e6:.1f} us/request")
    table.row("explain: Rendered.explain", library, floor, f"{library.wall / n * 1e6:.1f} us/request")
    table.row("command: explain --requests (1 run)", command, floor, f"{command.wall / n * 1e6:.1f} us/request")
    table.row("one process per request (1 timed, xN)", per_process, floor,
              f"{one.wall:.2f} s each; {per_process.wall / command.wall:.0f}x the command")
    table.goal(f"explain within {GOAL_RATIO:g}x the floor in CPU seconds ({library.ratio(floor)[1]:.1f}x)",
               library.ratio(floor)[1] <= GOAL_RATIO)
    batch = per_process.cpu / max(command.cpu, 1e-9)
    table.goal(f"--requests at least {GOAL_BATCH:g}x faster than a process per request in CPU seconds ({batch:.0f}x)",
               batch >= GOAL_BATCH)
    return table.exit_code()

if __name__ == "__main__":
    sys.exit(main(sys.argv))
