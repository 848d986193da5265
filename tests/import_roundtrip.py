"""The round trip of ``meshgen import``: Istio objects -> specs -> ``meshgen render`` -> Istio
objects, compared in form (:func:`normalise`) and in behaviour (a real Envoy, tests/envoy.py).

Used by tests/test_import_samples.py (Istio's own samples, vendored in tests/istio-samples/),
tests/test_import.py (Hypothesis-drawn objects) and tools/import_samples_table.py (the table
of docs/istio-samples.md).
"""

from __future__ import annotations

import copy
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from generator.errors import SpecErrors
from generator.importer import write
from generator.importer.convert import fqdn
from generator.importer.read import read
from generator.render import analysis
from generator.render.render import render_repo
from generator.routing import compiler
from tests import envoy

SAMPLES = Path(__file__).parent / "istio-samples"
#: Companions a sample needs to be imported as intended: bookinfo's VirtualServices name the
#: subsets of destination-rule-all.yaml (Istio's docs apply it first).
BOOKINFO_DR = "samples/bookinfo/networking/destination-rule-all.yaml"
ENV = "dev"


# --------------------------------------------------------------------------- normal form


def _gateway(ref: str, namespace: str) -> str:
    return ref if ref == "mesh" or "/" in ref else f"{namespace}/{ref}"


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _destination(d: dict[str, Any], namespace: str) -> dict[str, Any]:
    d = dict(d)
    d["host"] = fqdn(str(d.get("host")), namespace)
    return d


def _http(routes: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    out = []
    for r in routes:
        r = copy.deepcopy(r)
        r.pop("name", None)
        blocks = []
        for b in r.get("match") or []:
            b = dict(b)
            b.pop("name", None)
            for key in ("headers", "withoutHeaders"):
                if key in b:
                    b[key] = {str(k).lower(): v for k, v in b[key].items()}
            if "gateways" in b:
                b["gateways"] = sorted(_gateway(g, namespace) for g in b["gateways"])
            blocks.append(b)
        if "match" in r:
            r["match"] = blocks
        if "route" in r:
            dests = []
            for d in r["route"]:
                d = dict(d)
                d["destination"] = _destination(d["destination"], namespace)
                dests.append(d)
            if len(dests) == 1 and dests[0].get("weight", 100) == 100:
                dests[0].pop("weight", None)
            r["route"] = sorted(dests, key=lambda d: json.dumps(d, sort_keys=True))
        if "mirror" in r:
            r["mirror"] = _destination(r["mirror"], namespace)
        out.append(r)
    return out


def normalise(obj: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    """An Istio object in a form where meshgen's choices do not show: labels, annotations and
    names dropped (objects and routes), keys sorted, hosts and destinations as FQDNs, gateways as
    ``namespace/name`` (``[mesh]`` as none), a route's destinations as a set, a lone
    destination's weight 100 as none, header names in lower case, and whole floats as integers.
    Everything else, lists in their order, is kept."""
    ns = (obj.get("metadata") or {}).get("namespace") or namespace
    spec = copy.deepcopy(obj.get("spec") or {})
    kind = obj.get("kind")
    if kind == "VirtualService":
        if "hosts" in spec:
            spec["hosts"] = sorted({fqdn(h, ns) for h in spec["hosts"]})
        gws = sorted(_gateway(g, ns) for g in spec.get("gateways") or [])
        if gws and gws != ["mesh"]:
            spec["gateways"] = gws
        else:
            spec.pop("gateways", None)
        for section in ("http", "tcp", "tls"):
            if section in spec:
                spec[section] = _http(spec[section], ns)
    elif kind == "DestinationRule":
        spec["host"] = fqdn(spec["host"], ns)
        if "subsets" in spec:
            spec["subsets"] = sorted(spec["subsets"], key=lambda s: s.get("name", ""))
    elif kind == "ServiceEntry":
        spec["hosts"] = sorted(spec.get("hosts") or [])
    return {"kind": kind, "namespace": ns, "spec": _sorted(spec)}


# --------------------------------------------------------------------------- one import and render


@dataclass
class ObjectResult:
    """The round trip of one input object."""

    file: str
    kind: str
    name: str
    line: int
    imported: bool
    reason: str = ""
    original: dict[str, Any] | None = None
    rendered: dict[str, Any] | None = None

    @property
    def same_form(self) -> bool:
        return self.rendered is not None and normalise(self.original or {}) == normalise(self.rendered)


@dataclass
class CaseResult:
    name: str
    objects: list[ObjectResult] = field(default_factory=list)
    error: str = ""  # a render that failed


def make_repo(root: Path, objects: Iterable[dict[str, Any]]) -> Path:
    """An empty config repository with one environment that declares, as outside the
    repository, the hosts and gateways the input objects name (what a cluster has besides)."""
    hosts: set[str] = set()
    gateways: set[str] = set()
    for o in objects:
        ns = (o.get("metadata") or {}).get("namespace") or "default"
        spec = o.get("spec") or {}
        for section in ("http", "tcp", "tls"):
            for r in spec.get(section) or []:
                for d in r.get("route") or []:
                    hosts.add(fqdn(d["destination"]["host"], ns))
                for b in r.get("match") or []:
                    gateways.update(_gateway(g, ns) for g in b.get("gateways") or [])
        gateways.update(_gateway(g, ns) for g in spec.get("gateways") or [])
    gateways.discard("mesh")
    (root / "apps").mkdir(parents=True, exist_ok=True)
    (root / "environments").mkdir(exist_ok=True)
    env: dict[str, Any] = {"apiVersion": "meshgen.io/v1alpha1", "kind": "Environment", "metadata": {"name": ENV},
                           "spec": {"ingress": {"selector": {"istio": "ingressgateway"}}}}
    if hosts:
        env["spec"]["externalHosts"] = sorted(h for h in hosts if not h.startswith("*"))
    if gateways:
        env["spec"]["externalGateways"] = sorted(gateways)
    (root / "environments" / f"{ENV}.yaml").write_text(json.dumps(env, indent=1))
    return root


def run_case(name: str, files: list[Path], own: Path, root: Path,
             companions: dict[Path, set[str]] | None = None) -> CaseResult:
    """Import ``files`` (and the objects of the kinds named of each companion file) into a
    fresh repository at ``root``, render it, and pair each object of ``own`` (one of the
    files) with what meshgen rendered for it."""
    import yaml

    extra = [o for f, kinds in (companions or {}).items() for o in yaml.safe_load_all(f.read_text())
             if isinstance(o, dict) and o.get("kind") in kinds]
    plain = [o for f in files for o in yaml.safe_load_all(f.read_text()) if isinstance(o, dict)] + extra
    make_repo(root, plain)
    if extra:
        (root / "companions").mkdir()
        (root / "companions" / "objects.yaml").write_text(yaml.safe_dump_all(extra, sort_keys=False))
        files = [root / "companions" / "objects.yaml", *files]
    report = write.import_paths(root, files)
    case = CaseResult(name)
    try:
        rendering = render_repo(root, cache=False, strict=True)  # Istio's schemas too, as validate does
        failed = analysis.errors_of(analysis.analyze(rendering))  # and the cross-object analysis
        if failed:
            raise SpecErrors(failed)
        rendered = {(o.app, o.kind): o.obj for o in rendering.objects if o.env == ENV}
    except SpecErrors as e:
        case.error = "; ".join(x.format().replace(str(root) + "/", "") for x in e.errors)
        rendered = {}
    except Exception as e:  # a crash of render is a failed round trip too, reported as such
        case.error = f"render crashed: {type(e).__name__}: {e}"
        rendered = {}
    objects, _ = read(own.read_text(), str(own))
    by_place = {}
    for line in report.lines:
        if line.obj is not None:
            by_place[(line.obj.doc.path, line.obj.ref)] = line
    for obj in objects:
        line = by_place.get((obj.doc.path, obj.ref))
        place = obj.doc.place(*obj.at)
        result = ObjectResult(name, obj.kind, f"{obj.namespace}/{obj.name}", place.line,
                              imported=line is not None and line.error is None, original=obj.data)
        if line is None:
            result.reason = "not read"
        elif line.error is not None:
            result.reason = line.error.message
        else:
            app = (line.into or "").removeprefix("apps/").removesuffix(".yaml")
            result.rendered = rendered.get((app, obj.kind))
            if result.rendered is None:
                result.reason = f"imported, but the render failed: {case.error}" if case.error else \
                    "imported, but nothing was rendered for it"
        case.objects.append(result)
    return case


#: A sample that replaces another's VirtualService is imported with that one's other objects,
#: as Istio's docs apply them one after the other.
COMPANIONS = {"samples/tcp-echo/tcp-echo-20-v2.yaml": ("samples/tcp-echo/tcp-echo-all-v1.yaml",
                                                        {"DestinationRule", "Gateway"})}


def sample_cases() -> list[tuple[str, list[Path], Path, dict[Path, set[str]]]]:
    """``(name, files to import, the file whose objects are judged, companions)`` per vendored
    sample file; companions are ``{file: kinds}`` of objects imported with it."""
    out = []
    for f in sorted((SAMPLES / "samples").rglob("*.yaml")):
        rel = f.relative_to(SAMPLES).as_posix()
        files = [f]
        text = f.read_text()
        if rel.startswith("samples/bookinfo/networking/virtual-service") and "subset:" in text:
            files = [SAMPLES / BOOKINFO_DR, f]
        companions = {}
        if rel in COMPANIONS:
            other, kinds = COMPANIONS[rel]
            companions[SAMPLES / other] = kinds
        out.append((rel, files, f, companions))
    return out


# --------------------------------------------------------------------------- behaviour in Envoy


@dataclass(frozen=True)
class KeyedProxy(envoy.Proxy):
    """A proxy of one configuration (``key``) side by side with others in one Envoy."""

    key: str = ""


def _tagged(http: list[dict[str, Any]], namespace: str, tags: set[str]) -> list[dict[str, Any]]:
    """Routes whose destinations are collapsed into one cluster named by all of them (host,
    port, subset, weight), so the answer says which set of destinations a request reached,
    deterministically; gateways as ``namespace/name``."""
    out = []
    for r in copy.deepcopy(http):
        dests = r.get("route") or []
        if dests:
            parts = []
            for d in dests:
                dd = d["destination"]
                port = (dd.get("port") or {}).get("number", "-")
                weight = d.get("weight", 100) if len(dests) > 1 else 100
                parts.append(f"{fqdn(dd['host'], namespace)}:{port}:{dd.get('subset', '-')}={weight}")
            tag = ";".join(sorted(parts))
            tags.add(tag)
            r["route"] = [{"destination": {"host": "x", "subset": tag, "port": {"number": 80}}}]
        if "mirror" in r:
            m = r["mirror"]
            tag = f"mirror:{fqdn(m['host'], namespace)}:{(m.get('port') or {}).get('number', '-')}:{m.get('subset', '-')}"
            tags.add(tag)
            r["mirror"] = {"host": "x", "subset": tag, "port": {"number": 80}}
        for b in r.get("match") or []:
            if "gateways" in b:
                b["gateways"] = [_gateway(g, namespace) for g in b["gateways"]]
        out.append(r)
    return out


def _value(sm: dict[str, Any]) -> list[str]:
    if not sm:
        return ["1"]
    if "exact" in sm:
        return [sm["exact"]]
    if "prefix" in sm:
        return [sm["prefix"] + "z", sm["prefix"]]
    return []


def requests_of(vs: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """``(method, target, headers, proxy fields)`` that exercise every match block of ``vs``:
    one request meeting each block, each with one field left out (a near miss), and plain
    ones; the proxy fields (``port``, ``gateway``, ``labels``, ``namespace``) a block names."""
    out: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [("GET", "/", {}, {}), ("POST", "/x/y", {}, {})]
    for r in (vs.get("spec") or {}).get("http") or []:
        for b in r.get("match") or []:
            uris = _value(b["uri"]) if b.get("uri") else ["/"]
            if b.get("uri", {}).get("prefix"):
                uris.append(b["uri"]["prefix"].rstrip("/") + "/sub")
            headers: dict[str, str] = {}
            for k, sm in (b.get("headers") or {}).items():
                vals = _value(sm)
                if vals:
                    headers[k] = vals[0]
            query = {k: (_value(sm) or [""])[0] for k, sm in (b.get("queryParams") or {}).items()}
            method = (b.get("method") or {}).get("exact", "GET")
            proxy: dict[str, Any] = {}
            if b.get("port"):
                proxy["port"] = b["port"]
            if b.get("sourceLabels"):
                proxy["labels"] = tuple(sorted(b["sourceLabels"].items()))
            if b.get("sourceNamespace"):
                proxy["namespace"] = b["sourceNamespace"]
            for uri in uris or ["/"]:
                target = uri + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
                out.append((method, target, dict(headers), proxy))
                for k in headers:  # near misses
                    out.append((method, target, {h: v for h, v in headers.items() if h != k}, proxy))
                for k in (b.get("withoutHeaders") or {}):
                    out.append((method, target, {**headers, k: "x"}, proxy))
                    out.append((method, target, {**headers, k: ""}, proxy))
                if query:
                    out.append((method, uri, dict(headers), proxy))
                if method != "GET":
                    out.append(("GET", target, dict(headers), proxy))
    return out


def _domains(hosts: list[str], namespace: str) -> list[tuple[str, str]]:
    """``(Envoy domain, an authority it serves)`` per host."""
    out = []
    for h in dict.fromkeys(fqdn(h, namespace) for h in hosts or ["delegate.invalid"]):
        authority = "any.example.com" if h == "*" else ("a" + h[1:] if h.startswith("*") else h)
        out.append((h, authority))
    return out


_VARYING = {"date", "x-request-id", "x-envoy-upstream-service-time", "content-length", "server"}


def _answer(a: envoy.Answer) -> tuple[Any, ...]:
    return (a.status, a.subset, a.path,
            tuple(sorted((k, v) for k, v in a.upstream_headers.items() if k not in _VARYING)),
            tuple(sorted((k, v) for k, v in a.headers.items() if k not in _VARYING)))


def envoy_differences(binary: str, pairs: list[tuple[str, dict[str, Any], dict[str, Any], list[int]]]) -> dict[str, list[str]]:
    """Send the same requests to each original VirtualService and to what meshgen rendered
    from it, in one real Envoy; ``{key: [difference, ...]}`` per pair ``(key, original,
    rendered, gateway server ports)``."""
    tags: set[str] = set()
    hosts: dict[envoy.Proxy, list[envoy.VirtualHost]] = {}
    sends: list[tuple[str, KeyedProxy, KeyedProxy, str, str, str, dict[str, str]]] = []
    services: set[str] = set()
    for key, original, rendered, ports in pairs:
        ns = original.get("metadata", {}).get("namespace") or "default"
        reqs = requests_of(original) + requests_of(rendered)
        gws = {_gateway(g, ns) for o in (original, rendered) for g in (o["spec"].get("gateways") or ["mesh"])}
        for r in (original, rendered):
            for route in r["spec"].get("http") or []:
                for b in route.get("match") or []:
                    gws.update(_gateway(g, ns) for g in b.get("gateways") or [])
        domains = _domains(original["spec"].get("hosts") or [], ns)
        service = f"service:{domains[0][0]}"
        services.add(service)
        seen = set()
        for method, target, headers, pf in reqs:
            for gw in sorted(gws):
                # the port a block names (else 80), the Gateway's server ports, and a port no block names
                for port in sorted({pf.get("port", 80), 8081, *(ports if gw != "mesh" else [])}):
                    proxy_fields = (gw, port, pf.get("labels", ()), pf.get("namespace", "default"))
                    for domain, authority in domains:
                        ident = (proxy_fields, method, target, json.dumps(headers, sort_keys=True), authority)
                        if ident in seen:
                            continue
                        seen.add(ident)
                        sides = []
                        for side, obj in (("o", original), ("r", rendered)):
                            p = KeyedProxy(gw, port, proxy_fields[2], proxy_fields[3], key=f"{key}|{side}")
                            if p not in hosts:
                                bound = {_gateway(g, ns) for g in obj["spec"].get("gateways") or ["mesh"]}
                                vhs = []
                                if gw in bound and obj["spec"].get("http"):
                                    for d, _a in _domains(obj["spec"].get("hosts") or [], ns):
                                        vhs.append(envoy.VirtualHost(d, _tagged(obj["spec"]["http"], ns, tags),
                                                                     service=service if gw == "mesh" else ""))
                                hosts[p] = vhs
                            sides.append(p)
                        sends.append((key, sides[0], sides[1], method, target, authority, headers))
    proxies = list(hosts)
    subsets = {("x", 80): sorted(tags) or ["none"]}
    for s in services:
        subsets[(s, 80)] = [s.replace(":", "-")]
    e = envoy.Envoy(binary, hosts, proxies, subsets)
    diffs: dict[str, list[str]] = {k: [] for k, *_ in pairs}
    try:
        for key, po, pr, method, target, authority, headers in sends:
            a = _answer(e.send(po, method, target, authority, headers))
            b = _answer(e.send(pr, method, target, authority, headers))
            if a != b and len(diffs[key]) < 5:
                diffs[key].append(f"{method} {target} {authority} {headers} via {po.gateway}:{po.port}: "
                                  f"original {a[:3]}, rendered {b[:3]}")
    finally:
        e.close()
    return diffs


def gateway_ports(objects: Iterable[dict[str, Any]]) -> list[int]:
    return sorted({s["port"]["number"] for o in objects if o.get("kind") == "Gateway"
                   for s in (o.get("spec") or {}).get("servers") or []})


def no_route_added(rendered: dict[str, Any]) -> bool:
    return any(r.get("name") == compiler.NO_ROUTE for r in (rendered.get("spec") or {}).get("http") or [])


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --------------------------------------------------------------------------- Istio's samples


SAME_FORM = "round-trips"
SAME_ANSWERS = "round-trips in Envoy"
NOT_IMPORTED = "not imported"
DIFFERS = "DIFFERS"


@dataclass
class SampleRow:
    """One object of Istio's samples: what became of it."""

    file: str
    kind: str
    name: str
    line: int
    status: str
    note: str = ""


def _differing_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    na, nb = normalise(a)["spec"], normalise(b)["spec"]
    return sorted(k for k in set(na) | set(nb) if na.get(k) != nb.get(k))


def sample_rows(binary: str | None, tmp: Path) -> list[SampleRow]:
    """Import each vendored sample file (with its companions) into a fresh repository under
    ``tmp``, render it, and judge every object: the same object back (:func:`normalise`), the
    same answers in Envoy to the generated requests (VirtualServices whose form differs; all
    VirtualServices are sent the requests when ``binary`` is given), or not imported and why."""
    cases = []
    for i, (name, files, own, companions) in enumerate(sample_cases()):
        cases.append(run_case(name, files, own, tmp / f"case{i}", companions))
    pairs = []
    for c in cases:
        ports = gateway_ports(o.original for o in c.objects if o.original)
        for o in c.objects:
            if o.imported and o.kind == "VirtualService" and o.rendered is not None:
                pairs.append((f"{c.name}|{o.name}|{o.line}", o.original, o.rendered, ports))
    diffs = envoy_differences(binary, pairs) if binary and pairs else {}
    rows = []
    for c in cases:
        for o in c.objects:
            row = SampleRow(c.name.removeprefix("samples/"), o.kind, o.name, o.line, NOT_IMPORTED, o.reason)
            if o.imported and o.rendered is None:
                row.status = DIFFERS
            elif o.imported and o.rendered is not None:
                key = f"{c.name}|{o.name}|{o.line}"
                envoy_diff = diffs.get(key, [])
                if envoy_diff:
                    row.status, row.note = DIFFERS, "; ".join(envoy_diff)
                elif o.same_form:
                    row.status, row.note = SAME_FORM, ""
                elif key in diffs:
                    keys = ", ".join(_differing_keys(o.original or {}, o.rendered))
                    row.status = SAME_ANSWERS
                    row.note = f"same answers to every generated request; `{keys}` differ in form"
                    if no_route_added(o.rendered):
                        row.note += " (a last route answering 404 where no route matches, as istiod does when " \
                                    "the VirtualService applies)"
                else:
                    row.status = DIFFERS
                    row.note = "differs in " + ", ".join(_differing_keys(o.original or {}, o.rendered))
            rows.append(row)
    return rows


def table(rows: list[SampleRow]) -> str:
    """docs/istio-samples.md: every object of Istio's samples and whether it round-trips."""
    done = sum(1 for r in rows if r.status in (SAME_FORM, SAME_ANSWERS))
    lines = [
        "# Istio's samples through `meshgen import`",
        "",
        "Every VirtualService, DestinationRule, Gateway and ServiceEntry of Istio's `samples/`",
        "(vendored in `tests/istio-samples/`, see its `SOURCE.md`), imported with `meshgen import`,",
        "rendered again and checked as `meshgen validate` checks (Istio's schemas, the cross-object",
        "analysis). Each bookinfo VirtualService that names subsets",
        "is imported together with `destination-rule-all.yaml`, and `tcp-echo-20-v2.yaml` with the",
        "Gateway and DestinationRule of `tcp-echo-all-v1.yaml`, as Istio's docs apply them.",
        "",
        f"- **{SAME_FORM}**: the rendered object is the original, up to names, labels, key order",
        "  and short or fully qualified hosts (`normalise()` in `tests/import_roundtrip.py`); a",
        "  VirtualService is also sent the same generated requests (its hosts, match values and",
        "  near misses) in a real Envoy beside the original, with the same answers;",
        f"- **{SAME_ANSWERS}**: a VirtualService whose rendered form differs where it means the",
        "  same: every generated request gets the same answer from both in Envoy;",
        f"- **{NOT_IMPORTED}**: the reason `meshgen import` gives.",
        "",
        f"{done} of {len(rows)} objects round-trip. Written by `tools/import_samples_table.py` from the",
        "results of `tests/test_import_samples.py`, which fails when this file is not current.",
        "",
        "| sample | object | line | result | why / note |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        note = r.note.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{r.file}` | {r.kind} `{r.name}` | {r.line} | {r.status} | {note} |")
    return "\n".join(lines) + "\n"
