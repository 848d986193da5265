"""Condition compiler speed and output size.

Usage: ``python bench/conditions.py [N]`` (default 10000).

Prints, side by side in one run:
  * floor: parsing the N conditions only (lexer + recursive descent + RE2 checks);
  * compile: ``routing.compile_http`` of each condition as the first route of a list ending in a
    catch-all (a third of them scoped like an exposed app with paths), parsing included, as in
    one render of many apps (the cache of lowered match blocks shared), and again cold (that
    cache emptied before each condition);
  * their ratio, and the mean per condition;
  * the largest output: Istio routes, Envoy routes (match blocks) and YAML bytes;
  * growth: Istio and Envoy routes for k negated non-header predicates, for k = 1..6, in a
    conjunction (linear) and in an exclusive-or chain (the exponential worst case), against the
    bound.

Exits 1 when a goal is missed: compiling within 15x the parse floor in CPU seconds (the
docs measure 10 to 12x), a conjunction of k negations within k + 2 Istio and Envoy routes
(docs/conditions.md), and the largest realistic output within ``routing.MAX_ROUTES``.

The conditions are "realistic": drawn with a fixed seed from the shapes teams write (user-agent
and cookie regexes, OR-ed headers, API prefixes with negated internal users or methods, query
flags, source namespaces and ports).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Table, best_of  # noqa: E402
from generator.errors import SpecErrors  # noqa: E402
from generator.routing import compiler as routing  # noqa: E402
from generator.routing import conditions  # noqa: E402

SCOPE = 'gateway "mesh" or (gateway "shop/web-gateway" and (uri prefix "/shop" or uri prefix "/api"))'
BROWSERS = ["Chrome", "Firefox", "Safari", "Nexus 6P", "iPhone", "Edge"]
USERS = ["jason", "alice", "qa-bot"]
#: Compile time over parse time, CPU seconds (docs/conditions.md measures 10 to 12x).
GOAL_RATIO = 15.0
PATHS = ["/api", "/api/v2", "/shop", "/static", "/health", "/admin"]


def atom(rnd: random.Random) -> str:
    kind = rnd.randrange(10)
    if kind == 0:
        return f'header "User-Agent" regex "^.*({rnd.choice(BROWSERS)}).*$"'
    if kind == 1:
        return f'header "cookie" regex "^(.*?;)?(user={rnd.choice(USERS)})(;.*)?$"'
    if kind == 2:
        return f'header "x-canary" exact "{rnd.choice(["1", "true", "beta"])}"'
    if kind == 3:
        return f'uri prefix "{rnd.choice(PATHS)}"'
    if kind == 4:
        return f'method exact "{rnd.choice(["GET", "POST", "DELETE"])}"'
    if kind == 5:
        return f'query "{rnd.choice(["debug", "preview"])}" present'
    if kind == 6:
        return f'header "x-user" regex "{rnd.choice(["internal-.*", "test-[0-9]+"])}"'
    if kind == 7:
        return f'source namespace "{rnd.choice(["frontend", "batch"])}"'
    if kind == 8:
        return f"port {rnd.choice([80, 8080])}"
    return f'header "x-env" exact "{rnd.choice(["", "staging", "prod"])}"'


def condition(rnd: random.Random) -> str:
    shape = rnd.randrange(6)
    if shape == 0:  # Lamia: OR of header regexes
        return " or ".join(f'header "User-Agent" regex "^.*({b}).*$"' for b in rnd.sample(BROWSERS, rnd.randint(1, 3)))
    if shape == 1:  # a prefix, and not (internal user or a method)
        return f'uri prefix "{rnd.choice(PATHS)}" and not ({atom(rnd)} or {atom(rnd)})'
    if shape == 2:  # conjunction with one negation
        return f"{atom(rnd)} and not {atom(rnd)}"
    if shape == 3:
        return f"({atom(rnd)} or {atom(rnd)}) and {atom(rnd)}"
    if shape == 4:
        return " and ".join(atom(rnd) for _ in range(rnd.randint(1, 3)))
    return f"not ({atom(rnd)} and {atom(rnd)})"


def route_list(when: str) -> list[routing.SpecRoute]:
    body = {"route": [{"destination": {"host": "app", "subset": "v2"}}]}
    return [routing.SpecRoute("canary", when, body),
            routing.SpecRoute("default", None, {"route": [{"destination": {"host": "app", "subset": "v1"}}]})]


def envoy_routes(http: list[dict]) -> int:
    return sum(len(r.get("match") or [{}]) for r in http)


def growth() -> bool:
    """Print the growth table; whether every conjunction stayed within k + 2 routes."""
    print("\ngrowth with k negated non-header predicates (before a catch-all):")
    print(f"{'k':>3} {'conjunction: Istio/Envoy routes':>34} {'xor chain: Istio/Envoy routes':>32}")
    preds = [f'query "flag{i}" present' for i in range(8)]
    linear = True
    for k in range(1, 7):
        conj = " and ".join(f"not {p}" for p in preds[:k])
        # (not p1) xor (not p2) xor ... as an OR of terms: every assignment with odd parity
        xor = "not " + preds[0]
        for p in preds[1:k]:
            xor = f"(({xor}) and {p}) or (not ({xor}) and not {p})"
        cells = []
        for when in (conj, xor):
            try:
                http = routing.compile_http(route_list(when), max_routes=10_000)
                cells.append(f"{len(http)}/{envoy_routes(http)}")
                if when is conj:
                    linear = linear and len(http) <= k + 2 and envoy_routes(http) <= k + 2
            except SpecErrors as e:
                cells.append(f"refused ({e.errors[0].message[:20]})")
                linear = linear and when is not conj
        print(f"{k:>3} {cells[0]:>34} {cells[1]:>32}")
    print(f"bound (routing.MAX_ROUTES): {routing.MAX_ROUTES} Envoy routes per VirtualService")
    return linear


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rnd = random.Random(20261121)
    whens = [condition(rnd) for _ in range(n)]
    scoped = [i % 3 == 0 for i in range(n)]

    def parse_all() -> None:
        for when in whens:
            conditions.parse(when)

    floor, _ = best_of(parse_all, runs=1)
    refused: dict[str, int] = {}

    def compile_all() -> list:
        conditions.compiled.cache_clear()
        refused.clear()
        outputs = []
        for when, scope in zip(whens, scoped):
            try:
                outputs.append((when, routing.compile_http(route_list(when), scope=SCOPE if scope else None)))
            except SpecErrors as e:
                reason = e.errors[0].message.split(": ", 1)[1]
                reason = reason.split("cannot")[1] if "cannot" in reason else reason
                refused[reason] = refused.get(reason, 0) + 1
        return outputs

    def compile_cold() -> None:  # again with the block cache emptied before each condition
        for when, scope in zip(whens, scoped):
            routing._lower.cache_clear()
            try:
                routing.compile_http(route_list(when), scope=SCOPE if scope else None)
            except SpecErrors:
                pass

    compile_time, outputs = best_of(compile_all, runs=1)
    cold_time, _ = best_of(compile_cold, runs=1)
    largest: tuple[int, int, str, list] = (0, 0, "", [])
    for when, http in outputs:
        size = envoy_routes(http)
        if (size, len(http)) > largest[:2]:
            largest = (size, len(http), when, http)

    print(f"{n} conditions ({sum(scoped)} scoped to an exposed app's paths), "
          f"{sum(refused.values())} refused:")
    for reason, count in sorted(refused.items(), key=lambda kv: -kv[1]):
        print(f"  {count:>6}  cannot{reason[:90]}")
    table = Table("", width=26)
    table.row("floor: parse only", floor, note=f"{floor.wall / n * 1e6:.0f} us per condition")
    table.row("compile (with parse)", compile_time, floor, f"{compile_time.wall / n * 1e6:.0f} us per condition")
    table.row("compile, cold cache", cold_time, floor, f"{cold_time.wall / n * 1e6:.0f} us per condition")
    size, routes, when, http = largest
    yaml_bytes = len(yaml.safe_dump(http, sort_keys=False).encode())
    print(f"largest output: {routes} Istio routes, {size} Envoy routes (match blocks), {yaml_bytes} bytes of YAML")
    print(f"  for: {when}")
    linear = growth()
    print()
    ratio = max(compile_time.ratio(floor)[1], cold_time.ratio(floor)[1])
    table.goal(f"compile within {GOAL_RATIO:g}x the parse floor in CPU seconds, cold cache too ({ratio:.1f}x)",
               ratio <= GOAL_RATIO)
    table.goal("a conjunction of k negations within k + 2 Istio and Envoy routes", linear)
    table.goal(f"the largest realistic output within routing.MAX_ROUTES ({size} <= {routing.MAX_ROUTES})",
               size <= routing.MAX_ROUTES)
    return table.exit_code()


if __name__ == "__main__":
    sys.exit(main())
