"""Watch canaries roll out by git commits, judged by a real Prometheus, in about three minutes.

What happens (nothing leaves this machine; everything lives in a temporary folder):

1. A throwaway bare git repository becomes "the remote"; a copy of this project's bundled
   example (meshgen.yaml, apps/, environments/) is rendered and pushed to it. Its promotion
   pipeline is dev -> staging -> prod.
2. A human commit shortens the rollout of ``books`` (v1 -> v2) to seconds and its soak
   between environments to a few seconds, gives it two gates (a smoke test before the start,
   a load test at every check) served by a local webhook, starts a rollout of ``reviews``
   (v1 -> v3) in ``dev``, and points dev and staging at a local Prometheus.
3. A local metrics endpoint serves Istio-shaped counters for both versions of each service;
   a real Prometheus (Debian's ``prometheus``) scrapes it every second. A fake mesh splits
   each service's requests by the weight it has applied: it reads each weight from the pushed
   remote and applies it :data:`APPLY_DELAY` seconds after it first sees it, as Argo CD or
   Flux would; the bot holds each new weight until Prometheus shows it applied.
4. The bot -- ``meshgen rollout step --env dev --env staging --push`` in its own clone --
   ticks every second: each weight waits to be seen applied ("waiting for 10 % to be applied;
   observed 0 % of ... requests"), then its check; books is healthy and steps to 100 % in dev; once reviews v3 has 25 %,
   its 5xx rate is raised, two checks fail, and the bot commits the rollback (which stops
   reviews' pipeline there). After the soak the bot promotes books to staging, where it
   starts again from the first step; prod waits for a human's approval.
5. A second human commit puts ``ratings`` (v1 -> v2) and ``reviews`` (v1 -> v2) in one rollout
   group, ``bookinfo``, and gives them the pipeline ``dev -> [prod, prod-us]``: dev, then a wave
   of two production clusters. The bot starts and steps the group as one, one commit per tick
   for both apps, in dev and then in both clusters of the wave at once.
6. ``git log`` of the remote tells the story; ``meshgen rollout status`` sums it up.
7. ``meshgen report`` writes the static report of the demo's rollouts, with a backtest of each, to
   ``build/demo-report/`` in this project, and the demo ends by printing its path.

Run: ``make demo`` (installs Prometheus when it can), or ``python demo/canary.py [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.fakemesh import (  # noqa: E402
    FakeMesh,
    LocalPrometheus,
    MeshTraffic,
    MetricsEndpoint,
    prometheus_binary,
)
from demo.gateserver import GateServer  # noqa: E402

INTERVAL = "10s"
SOAK = "5s"
DEADLINE = 300.0  # seconds; the first part normally ends after about two minutes
GROUP_INTERVAL = "3s"  # the group's rollout: two steps in dev, then two in each cluster of the wave
GROUP_DEADLINE = 150.0
APPLY_DELAY = 3.0  # seconds from a pushed commit to the fake mesh applying its weight
RPS = 60.0  # requests per second to each service, split by the applied weight


def say(text: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}== {text}{plain}", flush=True)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def meshgen(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS=os.environ.get("COLUMNS", "150"))
    proc = subprocess.run([sys.executable, "-m", "generator", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode not in (0,):
        sys.exit(f"meshgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def edit_yaml(path: Path, change) -> None:
    """Change a spec in place, keeping its comments (ruamel.yaml round trip)."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(path)
    change(data)
    with path.open("w") as f:
        yaml.dump(data, f)


def prepare(base: Path, prometheus_url: str, gate_url: str) -> tuple[Path, Path]:
    """The remote, and the bot's clone of it, holding the example with two rollouts in dev."""
    remote, human, bot = base / "remote.git", base / "human", base / "bot"
    git(base, "init", "-q", "--bare", "-b", "main", str(remote))
    human.mkdir()
    for name in ("apps", "environments", "templates"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, human / name)
    if (ROOT / "meshgen.yaml").is_file():
        shutil.copy(ROOT / "meshgen.yaml", human / "meshgen.yaml")
    identity = ["-c", "user.name=Ada Platform", "-c", "user.email=ada@example.com"]
    meshgen(human, "render")
    git(human, "init", "-q", "-b", "main")
    git(human, "add", "-A")
    git(human, *identity, "commit", "-qm", "The bundled example, rendered")
    git(human, "remote", "add", "origin", str(remote))
    git(human, "push", "-q", "-u", "origin", "main")

    def books(data) -> None:
        rollout = data["spec"]["rollout"]
        rollout["interval"] = INTERVAL
        rollout["analysis"]["minRequests"] = 20
        rollout["gates"] = [
            {"name": "smoke-test", "kind": "pre-rollout", "url": f"{gate_url}/smoke", "timeout": "5s"},
            {"name": "load-test", "kind": "step", "url": f"{gate_url}/load", "timeout": "5s",
             "metadata": {"cmd": "hey -z 10s -q 10 -c 2 http://books.mesh:80/"}},
        ]

    def dev(data) -> None:
        data["spec"]["prometheus"]["url"] = prometheus_url
        reviews = data["spec"]["apps"].setdefault("reviews", {}).setdefault("spec", {})
        reviews["rollout"] = {"stable": "v1", "canary": "v3", "route": "default", "steps": [10, 25, 50, 100],
                              "interval": INTERVAL, "analysis": {"minRequests": 20, "failureLimit": 2}}

    def staging(data) -> None:
        data["spec"]["prometheus"]["url"] = prometheus_url

    def settings(data) -> None:
        data["promotion"]["soak"] = SOAK

    edit_yaml(human / "apps" / "books.yaml", books)
    edit_yaml(human / "environments" / "dev.yaml", dev)
    edit_yaml(human / "environments" / "staging.yaml", staging)
    edit_yaml(human / "meshgen.yaml", settings)
    meshgen(human, "render")
    git(human, "add", "-A")
    git(human, *identity, "commit", "-qm", f"roll out books v2 (gated, soak {SOAK}) and reviews v3 in dev, "
                                           f"checked every {INTERVAL}")
    git(human, "push", "-q")
    git(base, "clone", "-q", str(remote), str(bot))
    return remote, bot


def prepare_wave_and_group(base: Path, prometheus_url: str) -> None:
    """A human commit: a second production cluster, ``prod-us``, beside ``prod`` (whose cluster
    is prod-eu); ``ratings`` and ``reviews`` v1 -> v2 as the rollout group ``bookinfo`` with the
    pipeline ``dev -> [prod, prod-us]`` (a wave of both clusters)."""
    human = base / "human"
    git(human, "pull", "-q", "--rebase")
    prod = (human / "environments" / "prod.yaml").read_text()
    (human / "environments" / "prod-us.yaml").write_text(
        prod.replace("{name: prod}", "{name: prod-us}").replace("name: prod-eu, server: https://prod.",
                                                                "name: prod-us, server: https://prod-us."))
    rollout = {"stable": "v1", "canary": "v2", "route": "default", "steps": [50, 100], "interval": GROUP_INTERVAL,
               "group": "bookinfo", "analysis": {"minRequests": 20, "failureLimit": 2}}

    def member(data) -> None:
        data["spec"]["rollout"] = dict(rollout)
        data["spec"]["promotion"] = {"order": ["dev", ["prod", "prod-us"]], "soak": "0s", "approval": []}

    def dev(data) -> None:
        data["spec"]["apps"]["reviews"]["spec"].pop("rollout", None)  # reviews v3 was rolled back

    def prometheus(data) -> None:
        data["spec"]["prometheus"]["url"] = prometheus_url

    def settings(data) -> None:  # books and the others go through the same wave
        data["promotion"]["order"] = ["dev", "staging", ["prod", "prod-us"]]
        data["promotion"]["approval"] = ["prod", "prod-us"]

    edit_yaml(human / "meshgen.yaml", settings)
    edit_yaml(human / "apps" / "ratings.yaml", member)
    edit_yaml(human / "apps" / "reviews.yaml", member)
    edit_yaml(human / "environments" / "dev.yaml", dev)
    for env in ("prod", "prod-us"):
        edit_yaml(human / "environments" / f"{env}.yaml", prometheus)
    meshgen(human, "render")
    git(human, "add", "-A")
    git(human, "-c", "user.name=Ada Platform", "-c", "user.email=ada@example.com", "commit", "-qm",
        "roll out ratings v2 and reviews v2 as the group bookinfo: dev, then the wave [prod, prod-us]")
    git(human, "push", "-q")


def run_wave_and_group(base: Path, bot: Path, remote: Path, mesh: FakeMesh) -> None:
    """Tick dev and both production clusters until the group succeeded in the whole wave."""
    say("the group bookinfo (ratings + reviews) steps together: dev, then the wave [prod, prod-us]")
    for app in ("ratings", "reviews"):  # dev's weights first; the wave's clusters share one Prometheus here
        mesh.follow("dev", app, "mesh", app, "v1", "v2", RPS)
    in_wave = False
    started = time.monotonic()
    waiting: set[str] = set()
    while time.monotonic() - started < GROUP_DEADLINE:
        tick = time.monotonic()
        proc = meshgen(bot, "rollout", "step", "--env", "dev", "--env", "prod", "--env", "prod-us", "--app", "ratings",
                       "--app", "reviews", "--push", check=False)
        stamp = f"  [{time.monotonic() - started:5.1f}s]"
        for line in (proc.stdout + proc.stderr).splitlines():
            where, _, what = line.partition(": ")
            if " waits: " in what or what.startswith("waiting for "):  # repeats every tick: say it once
                gist = f"{where} {what.split(';')[0]}"
                if gist in waiting:
                    continue
                waiting.add(gist)
            print(f"{stamp} {line}", flush=True)
        if all(phases(bot, env, ("ratings", "reviews")) == {"ratings": "Succeeded", "reviews": "Succeeded"}
               for env in ("prod", "prod-us")):
            break
        if not in_wave and phases(bot, "prod", ("ratings", "reviews")):
            for app in ("ratings", "reviews"):  # the wave started: requests follow prod's weights
                mesh.unfollow("dev", app)
                mesh.follow("prod", app, "mesh", app, "v1", "v2", RPS)
            in_wave = True
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    else:
        print("the group ran out of time", file=sys.stderr)
    say("one commit per tick for the whole group: both apps' weights move together")
    print(git(remote, "log", "--grep=rollout group", "--reverse", "--format=  %h %s", "main"), end="")


def phases(bot: Path, env: str = "dev", apps: tuple[str, ...] = ("books", "reviews")) -> dict[str, str]:
    out = {}
    for app in apps:
        path = bot / "status" / env / f"{app}.yaml"
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip().startswith("phase:"):
                    out[app] = line.split(":", 1)[1].strip()
    return out


def weight(bot: Path, app: str, env: str = "dev") -> int:
    path = bot / "status" / env / f"{app}.yaml"
    if not path.is_file():
        return 0
    for line in path.read_text().splitlines():
        if line.strip().startswith("canaryWeight:"):
            return int(line.split(":", 1)[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder to look around")
    args = parser.parse_args()
    if not prometheus_binary():
        print("The demo needs Prometheus: apt-get install prometheus (make demo does it when it can).",
              file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="meshgen-demo-"))
    traffic = MeshTraffic()
    for version in ("v1", "v2"):
        traffic.set("mesh", "books", version, rps=RPS / 2, error_ratio=0.0, latency_ms=40)
    for version in ("v1", "v2", "v3"):
        traffic.set("mesh", "reviews", version, rps=RPS / 2 if version != "v2" else 0, error_ratio=0.0, latency_ms=60)
    for version in ("v1", "v2"):
        traffic.set("mesh", "ratings", version, rps=RPS / 2 if version == "v1" else 0, error_ratio=0.0, latency_ms=30)
    endpoint = MetricsEndpoint(traffic)
    gate = GateServer()
    prometheus = None
    mesh = None
    try:
        say(f"starting Prometheus, scraping Istio-shaped metrics at http://{endpoint.address}/metrics every second")
        prometheus = LocalPrometheus([endpoint.address], workdir=base / "prometheus")
        say(f"a throwaway remote in {base}: the bundled example, rendered and pushed, then a human commit")
        remote, bot = prepare(base, prometheus.url, gate.url)
        print(git(remote, "log", "--format=  %h %an: %s", "main"), end="")
        mesh = FakeMesh(traffic, remote, delay=APPLY_DELAY)
        mesh.follow("dev", "books", "mesh", "books", "v1", "v2", RPS)
        mesh.follow("dev", "reviews", "mesh", "reviews", "v1", "v3", RPS)
        print(f"  (the fake mesh applies each weight {APPLY_DELAY:g} s after the remote has it, splitting "
              f"{RPS:g} requests per second by it)")
        prometheus.wait_for_scrape()
        say("the bot ticks every second: meshgen rollout step --env dev --env staging --push")
        print(f"  (books' gates are a local webhook at {gate.url}; it answers 200 and the bot records that)")
        raised = moved = False
        shown: dict[str, str] = {}
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE:
            tick = time.monotonic()
            proc = meshgen(bot, "rollout", "step", "--env", "dev", "--env", "staging", "--push", check=False)
            stamp = f"  [{time.monotonic() - started:5.1f}s]"
            for asked in gate.take():
                print(f"{stamp} webhook asked: {asked.get('name')} ({asked.get('kind')}) for {asked.get('app')} "
                      f"in {asked.get('env')} at {asked.get('weight')} %", flush=True)
            for line in (proc.stdout + proc.stderr).splitlines():
                if line.startswith("nothing due"):  # an idle tick: the demo shows what moves
                    continue
                where, _, what = line.partition(": ")
                if " waits: " in what or what.startswith("waiting for "):  # repeats every tick: say it when it changes
                    gist = what.split(";")[0].split(" (")[0]
                    if shown.get(where) == gist:
                        continue
                    shown[where] = gist
                print(f"{stamp} {line}", flush=True)
            if not raised and weight(bot, "reviews") >= 25:
                say("raising the 5xx rate of reviews v3 to 30 %")
                traffic.set("mesh", "reviews", "v3", error_ratio=0.3)
                raised = True
            dev = phases(bot)
            if dev.get("books") == "Succeeded" and "books" in phases(bot, "staging") and not moved:
                mesh.unfollow("dev", "books")  # books' requests now follow staging's weight
                mesh.follow("staging", "books", "mesh", "books", "v1", "v2", RPS)
                moved = True
            if dev.get("books") == "Succeeded" and dev.get("reviews") == "RolledBack" \
                    and weight(bot, "books", "staging") >= 25:
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        else:
            print("the demo ran out of time", file=sys.stderr)
        prepare_wave_and_group(base, prometheus.url)
        run_wave_and_group(base, bot, remote, mesh)
        say("git log of the remote: every weight change is a commit")
        print(git(remote, "log", "--format=  %h %<(12,trunc)%an %s", "main"), end="")
        say("a weight seen applied: the commit that starts the analysis window of books at 10 % in dev")
        print(git(remote, "log", "-1", "--grep=books (dev): canary v2 at 10 % seen applied", "--format=%B", "main"),
              end="")
        say("the rollback commit in full: the pipeline of reviews stops in dev")
        print(git(remote, "log", "-1", "--grep=rollback canary v3", "--format=%B", "--stat", "main"), end="")
        say(f"books promoted to staging by the bot, {SOAK} after it succeeded in dev, its smoke test passed")
        print(git(remote, "log", "-1", "--grep=(staging): start", "--format=%B", "main"), end="")
        say("meshgen rollout status: each rollout, then each promotion pipeline")
        print(meshgen(bot, "rollout", "status").stdout, end="")
        say("meshgen report: the demo's rollouts charted from git, the current policy's backtest beside each")
        report = ROOT / "build" / "demo-report"
        shutil.rmtree(report, ignore_errors=True)  # only this run's rollouts
        meshgen(bot, "report", "--out", str(report), "--backtest", "--prometheus-url", prometheus.url)
        print(f"\nreport of the demo's rollouts: {report / 'index.html'}")
        return 0
    finally:
        if mesh:
            mesh.close()
        if prometheus:
            prometheus.stop()
        endpoint.close()
        gate.close()
        if args.keep:
            print(f"\nkept {base} (remote.git, human/, bot/)")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
