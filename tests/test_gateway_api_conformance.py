"""The routing cases of the Gateway API conformance suite, answered by ``meshgen explain --objects``.

The manifests and cases are vendored in tests/gateway-api-conformance/ (SOURCE.md: commit, licence,
tools/vendor_gateway_api_conformance.py). Each case sends the request of the Go test to the
suite's Gateway (or, for mesh tests, to the Service its Host names) and checks what the suite
checks on the wire: the backend (or weights), the status, the redirect's Location, the request
the backend receives (path, host, headers) and the response headers.

Skipped, with the reason: tests of features Istio does not support (``unsupportedFeatures`` of
Istio's conformance report, vendored beside the cases), gRPC and cases whose input the data
cannot carry (a caller's namespace chosen in Go code, a pod IP). CORS cases check what Envoy's
CORS filter answers (:mod:`generator.routing.cors`): a preflight's status and every
``access-control-*`` header of the response, as the suite compares them (``ValidHeaderValues``,
whitespace ignored where the case says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.render import objects as objects_mod
from generator.routing import httproute
from tests.conftest import run_meshgen

DIR = Path(__file__).resolve().parent / "gateway-api-conformance"
DATA = json.loads((DIR / "cases.json").read_text(encoding="utf-8"))
REPORT = yaml.safe_load((DIR / "reports/v1.5/istio-istio/1.30.0-default-report.yaml").read_text(encoding="utf-8"))
#: Features Istio 1.30 does not support, per its conformance report.
ISTIO_UNSUPPORTED = {f"Support{f}" for p in REPORT["profiles"]
                     for f in ((p.get("extended") or {}).get("unsupportedFeatures") or [])}
ISTIO_SKIPPED = {t for p in REPORT["profiles"] for part in ("core", "extended")
                 for t in ((p.get(part) or {}).get("skippedTests") or [])}
MESH_NS = "gateway-conformance-mesh"
INFRA_NS = "gateway-conformance-infra"

#: Tests not run, and why.
NOT_RUN = {
    "MeshGRPCRouteWeight": "a GRPCRoute, not an HTTPRoute",
    "HTTPRouteHTTPSListener": "needs the TLS handshake's SNI, not carried by an HTTP request",
    "MeshFrontendHostname": "the caller is chosen in Go code",
    "HTTPRouteServiceTypes": "its request paths are built in Go code",
}
#: Single cases whose input the vendored data does not carry: (test, index) -> why.
NOT_EXPRESSED = {
    ("MeshConsumerRoute", 0): "the caller's namespace (the consumer's) is chosen in Go code",
    ("MeshConsumerRoute", 1): "the caller's namespace (not the consumer's) is chosen in Go code",
    ("MeshFrontend", 1): "sent to a pod IP, which no object names",
}


def _docs(*names: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in names:
        out += [d for d in yaml.safe_load_all((DIR / name).read_text(encoding="utf-8")) if isinstance(d, dict)]
    return out


def _params() -> list[Any]:
    out = []
    for test in DATA["tests"]:
        for i, case in enumerate(test["cases"]):
            marks = []
            reason = NOT_RUN.get(test["name"]) or NOT_EXPRESSED.get((test["name"], i))
            unsupported = ISTIO_UNSUPPORTED & set(test["features"])
            if unsupported or test["name"] in ISTIO_SKIPPED:
                reason = f"Istio does not pass it ({', '.join(sorted(unsupported)) or 'skippedTests'} in its report)"
            if reason:
                marks.append(pytest.mark.skip(reason=reason))
            out.append(pytest.param(test, i, case, id=f"{test['name']}-{i}", marks=marks))
    return out


def _split_host(host: str) -> tuple[str, int | None]:
    name, sep, port = host.rpartition(":")
    return (name, int(port)) if sep and port.isdigit() else (host, None)


def answer_for(test: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """``explain --objects`` for one case (the function the command calls)."""
    base = "mesh/manifests.yaml" if test["mesh"] else "base/manifests.yaml"
    objects = httproute.Objects.of(_docs(base, *test["manifests"]))
    req = case["Request"]
    host, port = _split_host(str(req.get("Host") or ("echo" if test["mesh"] else "")))
    asked = objects_mod.Asked(uri=req.get("Path") or "/", method=req.get("Method") or "GET",
                              headers=dict(req.get("Headers") or {}), authority=host or "192.0.2.10", port=port,
                              source_namespace=MESH_NS if test["mesh"] else None, scheme=case.get("scheme") or "http")
    if test["mesh"]:
        name, _, ns = host.partition(".")
        return objects_mod.explain(objects, asked, service=(ns.partition(".")[0] or MESH_NS, name))
    gw_ns, _, gw_name = (case.get("gateway") or test["gateway"]).partition("/")
    return objects_mod.explain(objects, asked, gateway=(gw_ns, gw_name))


def _check_headers(got: dict[str, str], want: dict[str, str] | None, absent: list[str] | None,
                   valid: dict[str, list[str]] | None = None, ignore_whitespace: bool = False) -> None:
    """As conformance/utils/http/http.go ``CompareRoundTrip`` compares them."""
    def norm(value: str) -> str:
        return value.replace(" ", "") if ignore_whitespace else value

    for name, value in (want or {}).items():
        assert name.lower() in got and norm(got[name.lower()]) == norm(value), (name, got)
    for name, values in (valid or {}).items():
        assert name.lower() in got and norm(got[name.lower()]) in [norm(v) for v in values], (name, got)
    for name in absent or []:
        assert name.lower() not in got, (name, got)


def _response_headers(answer: dict[str, Any], case: dict[str, Any]) -> dict[str, str]:
    """The response's headers: the backend's, then the route's ResponseHeaderModifier, then the CORS filter's."""
    got = {k.lower(): v for k, v in (case.get("BackendSetResponseHeaders") or {}).items()}
    got = httproute.apply_headers(got, (answer.get("headers") or {}).get("response") or {})
    return {**got, **((answer.get("cors") or {}).get("responseHeaders") or {})}


@pytest.mark.parametrize("test,index,case", _params())
def test_conformance_case(test: dict[str, Any], index: int, case: dict[str, Any]) -> None:
    answer = answer_for(test, case)
    response = case.get("Response") or {}
    status = response.get("StatusCode") or (response.get("StatusCodes") or [200])[0]
    ns = case.get("Namespace") or (MESH_NS if test["mesh"] else INFRA_NS)
    if status in (404, 500):
        assert answer["status"] == status, answer
        return
    if answer["status"] in (200, 204) and (answer.get("cors") or {}).get("answered"):  # answered by the CORS filter
        assert answer["status"] in (response.get("StatusCodes") or [status]), answer
        _check_headers(_response_headers(answer, case), response.get("Headers"), response.get("AbsentHeaders"),
                       response.get("ValidHeaderValues"), bool(response.get("IgnoreWhitespace")))
        return
    if 300 <= status < 400:
        assert answer["status"] == status, answer
        want = dict(case.get("RedirectRequest") or {})
        got = answer["redirect"]
        req = case["Request"]
        assert got["uri"] == (want.get("Path") or req.get("Path") or "/"), answer
        assert got["scheme"] == (want.get("Scheme") or case.get("scheme") or "http"), answer
        if want.get("Host"):
            assert got["authority"] == want["Host"], answer
        shown = got["location"].split("://", 1)[1].split("/", 1)[0]
        port = shown.rpartition(":")[2] if ":" in shown else ""
        if want.get("Port"):
            assert port == want["Port"], answer
        else:
            assert port in ("", {"http": "80", "https": "443"}.get(got["scheme"], "")), answer
        return
    assert answer["status"] is None, answer
    if "weights" in test:
        want = {k: v for k, v in test["weights"].items() if v}
        total = sum(answer["backends"].values())
        got = {k.partition("/")[2]: v / total for k, v in answer["backends"].items()}
        assert got == pytest.approx(want), answer
    elif case.get("Backend"):
        backends = set(answer["backends"])
        if answer["outcome"] == httproute.DEFAULT:  # the Service itself: its pods by its selector
            service = next(iter(backends))
            assert service in (f"{ns}/{case['Backend']}", f"{ns}/{case['Backend'].rsplit('-', 1)[0]}"), answer
        else:
            assert backends == {f"{ns}/{case['Backend']}"}, answer
    expected = case.get("ExpectedRequest")
    if expected and answer.get("forwarded"):
        fwd = answer["forwarded"]
        ereq = expected.get("Request") or {}
        if not test["mesh"]:  # the mesh client compares headers only (conformance/utils/echo/pod.go compareRequest)
            assert fwd["path"] == (ereq.get("Path") or case["Request"].get("Path") or "/"), answer
        if ereq.get("Host"):
            assert fwd["host"] == ereq["Host"], answer
        _check_headers(fwd["headers"], ereq.get("Headers"), expected.get("AbsentHeaders"))
    if response.get("Headers") or response.get("AbsentHeaders") or response.get("ValidHeaderValues"):
        _check_headers(_response_headers(answer, case), response.get("Headers"), response.get("AbsentHeaders"),
                       response.get("ValidHeaderValues"), bool(response.get("IgnoreWhitespace")))
    for mirror in case.get("MirroredTo") or []:
        ref = mirror["BackendRef"]
        assert f"{ref.get('Namespace') or ns}/{ref['Name']}" in {
            m["backend"] if "/" in m["backend"] else f"{ns}/{m['backend']}" for m in answer.get("mirror") or []}, answer


def test_the_vendored_cases_name_their_commit() -> None:
    source = (DIR / "SOURCE.md").read_text(encoding="utf-8")
    assert DATA["commit"] in source and (DIR / "LICENSE").is_file()
    assert sum(len(t["cases"]) for t in DATA["tests"]) > 200


def test_explain_objects_command_answers_a_conformance_case(tmp_path: Path) -> None:
    args = ["explain", "--objects", str(DIR / "base/manifests.yaml"), str(DIR / "tests/httproute-matching.yaml"),
            "--gateway", f"{INFRA_NS}/same-namespace", "--output", "json"]
    v2 = json.loads(run_meshgen(*args, "--uri", "/v2/example", cwd=tmp_path, check=True).stdout)
    assert v2["backends"] == {f"{INFRA_NS}/infra-backend-v2": 1} and v2["route"] == f"{INFRA_NS}/matching"
    segment = json.loads(run_meshgen(*args, "--uri", "/v2example", cwd=tmp_path, check=True).stdout)
    assert segment["backends"] == {f"{INFRA_NS}/infra-backend-v1": 1}
    header = json.loads(run_meshgen(*args, "--header", "version=two", cwd=tmp_path, check=True).stdout)
    assert header["backends"] == {f"{INFRA_NS}/infra-backend-v2": 1}


def test_explain_objects_answers_for_istio_virtual_services_too(tmp_path: Path) -> None:
    (tmp_path / "vs.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "bookinfo"},
         "spec": {"hosts": ["reviews"], "http": [
             {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}],
              "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
             {"name": "rest", "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
                                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 20}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "bookinfo"}}]))
    args = ["explain", "--objects", str(tmp_path), "--service", "bookinfo/reviews", "--output", "json"]
    jason = json.loads(run_meshgen(*args, "--header", "end-user=jason", cwd=tmp_path, check=True).stdout)
    assert (jason["route"], jason["rule"], jason["backends"]) == ("bookinfo/reviews", 0, {"bookinfo/reviews:v2": 100})
    rest = json.loads(run_meshgen(*args, cwd=tmp_path, check=True).stdout)
    assert rest["backends"] == {"bookinfo/reviews:v1": 80, "bookinfo/reviews:v3": 20} and rest["ruleName"] == "rest"
