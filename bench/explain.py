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
and the ratios of each to the floor.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.render import explain as explain_mod  # noqa: E402
from generator.routing import simulate  # noqa: E402

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

    start = time.perf_counter()
    for request in prepared:
        simulate.evaluate(http, request)
    floor = time.perf_counter() - start

    start = time.perf_counter()
    results = [rendered.explain(explain_mod.Ask.from_json(a)) for a in data]
    library = time.perf_counter() - start
    routes = {}
    for r in results:
        routes[r.spec_route] = routes.get(r.spec_route, 0) + 1

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("".join(json.dumps(a) + "\n" for a in data))
        lines = f.name
    try:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "generator", "-C", str(ROOT), "explain", "reviews", "--env",
                               "prod", "--requests", lines, "--output", "json"], env=env, capture_output=True,
                              text=True, check=True)
        command = time.perf_counter() - start
    finally:
        os.unlink(lines)
    assert len(proc.stdout.splitlines()) == n
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "generator", "-C", str(ROOT), "explain", "reviews", "--env", "prod",
                    "--uri", "/reviews/1", "--output", "json"], env=env, capture_output=True, check=True)
    one = time.perf_counter() - start

    print(f"{n} requests against rendered/prod/mesh/reviews/virtualservice.yaml "
          f"(routes taken: {', '.join(f'{k}: {v}' for k, v in sorted(routes.items(), key=str))})")
    print(f"floor    simulate.evaluate          {floor:8.3f} s  {floor / n * 1e6:7.1f} us/request")
    print(f"explain  Rendered.explain           {library:8.3f} s  {library / n * 1e6:7.1f} us/request  "
          f"{library / floor:6.1f}x the floor")
    print(f"command  explain --requests (1 run) {command:8.3f} s  {command / n * 1e6:7.1f} us/request  "
          f"{command / floor:6.1f}x the floor")
    print(f"before   one process per request    {one * n:8.1f} s  ({one:.2f} s each, measured once)  "
          f"{one * n / command:6.0f}x the command")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
