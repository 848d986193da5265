"""Render speed: N synthetic apps x 3 environments.

Usage: ``python bench/render.py [N] [--profile]`` (default 1000), or
``python bench/render.py [N] --target gateway-api [--profile]``: the same apps rendered by the
``istio`` and the ``gateway-api`` target (``spec.target`` of the three environments), side by
side, best of rounds that alternate between them, and their ratio (goal: gateway-api within
1.2x istio); with ``--profile``, then where one render of each target spends its time.
The apps have no ``retries`` there (HTTPRoute does not carry them), on both sides.

Prints, side by side in one run:
  * full render: ``meshgen render`` into an empty ``rendered/`` (load, check, compile, template,
    parse back, dump, write), in-process;
  * floor: PyYAML's C dumper writing the same objects to the same paths (no loading, no checks);
  * their ratio (goal: within 1.5x the floor at N=1000);
  * no-op re-render: ``meshgen render`` again with nothing changed, the render cache in
    ``.git/meshgen`` warm, in-process, beside its floor (reading every rendered file);
  * the no-op command: ``meshgen render`` as a user runs it, a new process (interpreter
    start-up and imports included, bytecode cached as an installed package has it), best of
    3 (goal: under 0.25 s), beside its floor (the interpreter starting and exiting);
  * with ``--profile``, where a full render's time goes: cProfile's own time summed by part
    (loading specs, checks, routes, templates, YAML dump, writing...), then its top functions;
  * spec composing: meshgen's loop over libyaml's events (no recursion, input limits checked)
    against libyaml's own recursive composer, on the same App specs;
  * for reference, ruamel.yaml's round-trip loader on the same App specs against meshgen's loader.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.render import output, render  # noqa: E402
from generator.spec import loader  # noqa: E402

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata:
  name: app-{i}
  namespace: team-{team}
spec:
  service: {{host: app-{i}, port: 8080}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  trafficPolicy:
    tls: {{mode: ISTIO_MUTUAL}}
    connectionPool: {{tcp: {{maxConnections: 100}}, http: {{http1MaxPendingRequests: 10}}}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}}
{expose}  routes:
    - name: default
      to: {{v1: 90, v2: 10}}
      timeout: 5s
      retries: {{attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure"}}
"""
EXPOSE = "  expose:\n    hosts: [app-{i}.example.com]\n"
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: {env}}}
spec:
{target}  ingress: {{selector: {{istio: ingressgateway}}}}
"""


ROUNDS = 3


def build(root: Path, n: int, target: str | None = None) -> None:
    """A git checkout with n App specs and three environments (``spec.target`` when given)."""
    (root / "apps").mkdir(parents=True)
    (root / "environments").mkdir()
    for i in range(n):
        expose = EXPOSE.format(i=i) if i % 4 == 0 else ""
        text = APP.format(i=i, team=i % 20, expose=expose)
        if target:
            text = "".join(line for line in text.splitlines(keepends=True) if "retries:" not in line)
        (root / "apps" / f"app-{i}.yaml").write_text(text)
    for env in ("dev", "staging", "prod"):
        line = f"  target: {target}\n" if target else ""
        (root / "environments" / f"{env}.yaml").write_text(ENV.format(env=env, target=line))
    subprocess.run(["git", "init", "-q", str(root)], check=True)


#: Parts of a render, by where a function's code lives (the first pattern found in
#: ``<file>:<function>``), for the profile's summary.
PARTS = [
    ("parsing filled templates back", ("yaml/__init__.py:compose", "spec/loader.py:walk", "spec/loader.py:<dictcomp>",
                                       "spec/loader.py:parse_plain", "spec/loader.py:_scalar", "yaml/constructor")),
    ("YAML dump (representer; the floor's too)", ("yaml/representer", "yaml/serializer", "yaml/emitter",
                                                  "yaml/events", "yaml/__init__.py:dump")),
    ("loading specs (YAML with places)", ("generator/spec/loader",)),
    ("specs: schema, merge, config", ("generator/spec/", "jsonschema", "fastjsonschema", "referencing")),
    ("checks (per app, cross-app)", ("generator/render/checks", "generator/render/analysis", "generator/rollout/")),
    ("routes (compiler, its deep copies)", ("generator/routing/", "copy.py")),
    ("objects built by a target (targets/)", ("generator/targets/",)),
    ("templates, dumps by shape", ("generator/render/shapes", "jinja2", "templates/", "quoting", "<lambda>")),
    ("writing rendered/", ("generator/render/output", "spec/paths", "os.py", "<frozen os>", "posixpath")),
    ("render's own loop and dump cache", ("generator/render/render", "json/")),
]
#: Helpers whose time belongs to their callers: built-ins (``isinstance``, ``dict.get``, the
#: C emitter...), PyYAML's resolver (the parse back and the dump both call it), the standard
#: library's general helpers (pathlib, typing...).
HELPERS = ("~:", "yaml/resolver", "yaml/nodes", "pathlib", "typing", "<frozen abc>", "fractions", "urllib/",
           "attr/", "enum")


def _parts(stats, func, share: float, sums: dict[str, float], depth: int = 0) -> None:
    where = f"{func[0]}:{func[2]}"
    callers = stats.stats[func][4] if func in stats.stats else {}
    if any(h in where for h in HELPERS) and callers and depth < 8:
        spent = sum(entry[2] for entry in callers.values()) or 1.0
        for caller, entry in callers.items():
            _parts(stats, caller, share * entry[2] / spent, sums, depth + 1)
        return
    part = next((label for label, keys in PARTS if any(k in where for k in keys)), "other")
    sums[part] = sums.get(part, 0.0) + share


def profile_summary(stats) -> list[tuple[str, float]]:
    """cProfile's own time summed by :data:`PARTS` (the rest: "other"), largest first; a
    helper's (:data:`HELPERS`) goes to its callers' parts, in proportion to the time each call
    site spent in it."""
    sums: dict[str, float] = {}
    for func, (_, _, own, _, _) in stats.stats.items():
        _parts(stats, func, own, sums)
    return sorted(sums.items(), key=lambda item: -item[1])


def command_seconds(repo: Path, tmp: Path, args: list[str]) -> float:
    """Best of ROUNDS wall times of ``python args`` in ``repo``, as a user runs meshgen: bytecode
    cached (written on a first run, under ``tmp``), this checkout's generator importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=str(tmp / "pycache"), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    runs = []
    for _ in range(ROUNDS + 1):  # the first writes the bytecode
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        runs.append(time.perf_counter() - start)
    return min(runs[1:])


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def print_profile(fn, what: str) -> None:
    """Where ``fn``'s time goes: cProfile's own time by part (:func:`profile_summary`), then the
    top functions by own time."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.runcall(fn)
    stats = pstats.Stats(profile, stream=sys.stdout)
    summary = profile_summary(stats)
    total = sum(own for _, own in summary)
    print(f"where {what}'s time goes (cProfile, own time by part; {total:.2f} s profiled):")
    for label, own in summary:
        print(f"  {label:<40}{own:6.2f} s  {own / total:4.0%}")
    print("top functions by own time:")
    stats.sort_stats("tottime").print_stats(12)


def targets_side_by_side(n: int, target: str, profile: bool = False) -> int:
    """``istio`` against ``target`` on the same apps, full renders into an empty ``rendered/``;
    with ``profile``, then where one render of each spends its time (:func:`print_profile`)."""
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    tmp = Path(tempfile.mkdtemp(prefix="meshgen-bench-", dir=shm))
    try:
        repos = {}
        for name in ("istio", target):
            repos[name] = tmp / name
            build(repos[name], n, name)
        runs: dict[str, list[float]] = {name: [] for name in repos}
        counts = {}
        for _ in range(ROUNDS):
            for name, repo in repos.items():
                shutil.rmtree(repo / "rendered", ignore_errors=True)
                gc.collect()

                def full(repo=repo):
                    rendering = render.render_repo(repo, cache=False)
                    output.write_rendering(repo, rendering)
                    return rendering

                seconds, rendering = timed(full)
                runs[name].append(seconds)
                counts[name] = (len(rendering.objects), len(rendering.files))
                del rendering
        print(f"apps: {n} x 3 environments")
        for name in repos:
            objects, files = counts[name]
            print(f"{'full render, ' + name:<28}{min(runs[name]):8.2f} s   (best of {ROUNDS}; "
                  f"{objects} objects, {files} files)")
        ratio = min(runs[target]) / min(runs["istio"])
        print(f"{'ratio ' + target + ' / istio':<28}{ratio:8.2f} x   (goal <= 1.2)")
        if profile:
            for name, repo in repos.items():
                shutil.rmtree(repo / "rendered", ignore_errors=True)
                gc.collect()
                print_profile(lambda repo=repo: output.write_rendering(repo, render.render_repo(repo, cache=False)),
                              f"one {name} render")
        return 0 if ratio <= 1.2 else 1
    finally:
        shutil.rmtree(tmp)


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--profile"]
    if "--target" in args:
        at = args.index("--target")
        target = args[at + 1]
        del args[at:at + 2]
        return targets_side_by_side(int(args[0]) if args else 1000, target, "--profile" in sys.argv)
    n = int(args[0]) if args else 1000
    # in memory where the machine has it, so disk latency does not swamp the figures
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    tmp = Path(tempfile.mkdtemp(prefix="meshgen-bench-", dir=shm))
    try:
        repo = tmp / "repo"
        build(repo, n)

        def full(cache=True):
            rendering = render.render_repo(repo, cache=cache)
            output.write_rendering(repo, rendering)
            return rendering

        cold_s, rendering = timed(full)  # the first render also stores the cache
        floor_dir = tmp / "floor"

        def floor():
            for o in rendering.objects:
                path = floor_dir / o.path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.dump(o.obj, Dumper=yaml.CSafeDumper, sort_keys=False))

        # full render and floor alternate, each from an empty output directory; the best of
        # ROUNDS runs of each is kept, so load from other processes skews the ratio less
        full_runs, floor_runs, noop_runs = [], [], []
        for _ in range(ROUNDS):
            shutil.rmtree(repo / "rendered", ignore_errors=True)
            shutil.rmtree(floor_dir, ignore_errors=True)
            gc.collect()
            full_runs.append(timed(lambda: full(cache=False))[0])
            floor_runs.append(timed(floor)[0])
            noop_runs.append(timed(full)[0])
        full_s, floor_s, noop_s = min(full_runs), min(floor_runs), min(noop_runs)
        objects, files = len(rendering.objects), len(rendering.files)
        files_list = list(rendering.files)
        if "--profile" in sys.argv:
            shutil.rmtree(repo / "rendered", ignore_errors=True)
            print_profile(lambda: full(cache=False), "a full render")
        del rendering
        gc.collect()
        output.write_rendering(repo, render.render_repo(repo))  # rendered/ and the cache as a full render left them
        command_s = command_seconds(repo, tmp, ["-m", "generator", "render"])
        start_s = command_seconds(repo, tmp, ["-c", "pass"])
        sample = [repo / "apps" / f"app-{i}.yaml" for i in range(min(n, 100))]
        c_s, _ = timed(lambda: [loader.load_document(p) for p in sample])
        texts = [p.read_text() for p in sample]
        lib_s = min(timed(lambda: [list(yaml.compose_all(t, Loader=yaml.CSafeLoader)) for t in texts])[0]
                    for _ in range(5))
        own_s = min(timed(lambda: [loader.compose(t) for t in texts])[0] for _ in range(5))
        from ruamel.yaml import YAML

        rt = YAML(typ="rt")
        r_s, _ = timed(lambda: [rt.load(p.read_text()) for p in sample])
        print(f"apps: {n} x 3 environments = {objects} objects, {files} files")
        print(f"{'full render (first, cold)':<28}{cold_s:8.2f} s")
        print(f"{'full render':<28}{full_s:8.2f} s   (best of {ROUNDS})")
        print(f"{'floor (C dumper, same objs)':<28}{floor_s:8.2f} s   (best of {ROUNDS})")
        read_s = min(timed(lambda: [(repo / rel).read_bytes() for rel in files_list])[0] for _ in range(ROUNDS))
        print(f"{'ratio full / floor':<28}{full_s / floor_s:8.2f} x   (goal <= 1.5)")
        print(f"{'no-op re-render':<28}{noop_s:8.2f} s   ({noop_s / full_s:.2f} x of a full render; goal < 0.25 s)")
        print(f"{'floor (read every output)':<28}{read_s:8.2f} s   (no-op {noop_s / read_s:.1f} x)")
        print(f"{'no-op command':<28}{command_s:8.2f} s   (`meshgen render`, a new process, best of {ROUNDS}; "
              f"goal < 0.25 s)")
        print(f"{'floor (interpreter start)':<28}{start_s:8.2f} s   (command {command_s / start_s:.1f} x; "
              f"in-process no-op {noop_s:.2f} s)")
        print(f"{'compose, libyaml recursive':<28}{lib_s / len(sample) * 1000:8.2f} ms/app")
        print(f"{'compose, meshgen loop':<28}{own_s / len(sample) * 1000:8.2f} ms/app  ({own_s / lib_s:.1f}x)")
        print(f"{'spec load, meshgen':<28}{c_s / len(sample) * 1000:8.2f} ms/app")
        print(f"{'spec load, ruamel rt':<28}{r_s / len(sample) * 1000:8.2f} ms/app  ({r_s / c_s:.0f}x)")
        ok = full_s / floor_s <= 1.5 and noop_s < 0.25 and command_s < 0.25
        print(f"goal: full render within 1.5x the floor, no-op (in-process and the command) under 0.25 s: "
              f"{'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
