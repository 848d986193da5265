"""The rest of Istio's HTTP route on a spec route: ``rewrite``, ``redirect``, ``directResponse``,
``headers``, ``corsPolicy``: rendered verbatim and valid against Istio's CRD, refused where
Istio is silent or would refuse, and shown by ``meshgen explain``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests import istio_crds
from tests.conftest import build_file_tree, run_meshgen

ENV = """\
    apiVersion: meshgen.io/v1alpha1
    kind: Environment
    metadata: {name: dev}
    spec:
      ingress: {selector: {istio: ingressgateway}}
    """

APP = """\
    apiVersion: meshgen.io/v1alpha1
    kind: App
    metadata: {name: shop, namespace: web}
    spec:
      service: {host: shop, port: 80}
      versions:
        v1: {labels: {version: v1}}
        v2: {labels: {version: v2}}
      routes:
        - name: old-api
          when: uri prefix "/v1/"
          redirect: {uri: /v2/, redirectCode: 308}
        - name: moved
          when: uri prefix "/moved"
          redirect: {authority: new.example.com, scheme: https, port: 8443}
        - name: gone
          when: uri exact "/legacy"
          directResponse: {status: 410, body: {string: "gone"}}
        - name: api
          when: uri prefix "/api/"
          to: v2
          rewrite: {uri: /, authority: api.internal}
          headers:
            request: {set: {x-api: "1"}, remove: [x-debug]}
            response: {add: {x-served-by: shop}}
          corsPolicy:
            allowOrigins: [{exact: "https://shop.example.com"}]
            allowMethods: [GET, POST]
            maxAge: 24h
        - name: default
          to: v1
    """


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = build_file_tree(tmp_path_factory.mktemp("shop"), {"environments/dev.yaml": ENV, "apps/shop.yaml": APP})
    run_meshgen("render", cwd=repo, check=True)
    return repo


def test_the_route_fields_render_verbatim_and_istio_accepts_them(shop: Path) -> None:
    vs = yaml.safe_load((shop / "rendered/dev/web/shop/virtualservice.yaml").read_text())
    routes = {r["name"]: r for r in vs["spec"]["http"]}
    assert routes["old-api"] == {"name": "old-api", "match": [{"uri": {"prefix": "/v1/"}}],
                                 "redirect": {"uri": "/v2/", "redirectCode": 308}}
    assert routes["gone"]["directResponse"] == {"status": 410, "body": {"string": "gone"}}
    assert "route" not in routes["gone"] and "route" not in routes["moved"]
    assert routes["api"]["rewrite"] == {"uri": "/", "authority": "api.internal"}
    assert routes["api"]["headers"]["request"] == {"set": {"x-api": "1"}, "remove": ["x-debug"]}
    assert routes["api"]["corsPolicy"]["allowOrigins"] == [{"exact": "https://shop.example.com"}]
    assert istio_crds.problems(vs) == []
    assert run_meshgen("validate", cwd=shop).returncode == 0


def explain(repo: Path, *args: str) -> dict:
    proc = run_meshgen("explain", "shop", "--env", "dev", *args, "--output", "json", cwd=repo, check=True)
    return json.loads(proc.stdout)


def test_explain_shows_a_redirect_and_where_it_points(shop: Path) -> None:
    out = explain(shop, "--uri", "/v1/cart?id=7")
    assert out["route"] == "old-api" and out["destinations"] == {}
    assert out["redirect"] == {"uri": "/v2/", "redirectCode": 308}
    assert out["location"] == "http://shop/v2/?id=7"
    assert explain(shop, "--uri", "/moved/x")["location"] == "https://new.example.com:8443/moved/x"
    proc = run_meshgen("explain", "shop", "--env", "dev", "--uri", "/v1/cart", cwd=shop, check=True)
    assert "Envoy answers 308 itself: location http://shop/v2/" in proc.stdout


def test_explain_shows_a_direct_response(shop: Path) -> None:
    out = explain(shop, "--uri", "/legacy")
    assert out["route"] == "gone" and out["directResponse"] == {"status": 410, "body": {"string": "gone"}}
    proc = run_meshgen("explain", "shop", "--env", "dev", "--uri", "/legacy", cwd=shop, check=True)
    assert "Envoy answers 410 itself" in proc.stdout


def test_explain_shows_the_rewrite_headers_and_cors_policy(shop: Path) -> None:
    out = explain(shop, "--uri", "/api/cart?x=1")
    assert out["destinations"] == {"v2": 100}
    assert out["forwardedPath"] == "/cart?x=1" and out["forwardedAuthority"] == "api.internal"
    assert out["headers"]["response"] == {"add": {"x-served-by": "shop"}}
    assert out["corsPolicy"]["allowMethods"] == ["GET", "POST"]
    proc = run_meshgen("explain", "shop", "--env", "dev", "--uri", "/api/cart", cwd=shop, check=True)
    assert "forwardedPath: /cart" in proc.stdout and 'rewrite: {"authority": "api.internal", "uri": "/"}' in proc.stdout


def test_explain_forwards_a_uri_regex_rewrite_as_envoy_does(tmp_path: Path) -> None:
    """Envoy's regex_rewrite (RE2, every match, ``\\1`` a group; tests/test_envoy.py runs it)."""
    app = with_route("to: v2\nrewrite: {uriRegexRewrite: {match: '^/r/([0-9]+)', rewrite: '/items/\\1'}}")
    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV, "apps/shop.yaml": app})
    run_meshgen("render", cwd=repo, check=True)
    out = explain(repo, "--uri", "/r/12?x=1")
    assert out["route"] == "r" and out["forwardedPath"] == "/items/12?x=1"
    assert "forwardedPath" not in explain(repo, "--uri", "/r/ab")  # no match: the path as it is
    proc = run_meshgen("explain", "shop", "--env", "dev", "--uri", "/r/7", cwd=repo, check=True)
    assert "forwardedPath: /items/7" in proc.stdout


def test_route_tests_check_a_redirects_status(shop: Path, tmp_path: Path) -> None:
    app = APP.rstrip(" ") + """\
      tests:
        - request: {uri: /v1/cart}
          expect: {route: old-api, status: 308}
        - request: {uri: /api/cart}
          expect: {route: api, versions: {v2: 100}, status: null}
    """
    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV, "apps/shop.yaml": app})
    run_meshgen("render", cwd=repo, check=True)
    assert run_meshgen("check", cwd=repo).returncode == 0


def with_route(body: str) -> str:
    """APP with a route ``r`` (``when: uri prefix "/r"`` and ``body``, lines joined by newlines) before ``default``."""
    lines = ["        - name: r", '          when: uri prefix "/r"'] + [f"          {line}" for line in body.split("\n")]
    return APP.replace("        - name: default\n", "\n".join(lines) + "\n        - name: default\n")


@pytest.mark.parametrize(("body", "message"), [
    ("to: v1\nredirect: {uri: /x}",
     "route 'r' has both 'to' and 'redirect'; a route either forwards (`to`), redirects or answers directly"),
    ("redirect: {uri: /x}\ndirectResponse: {status: 200}", "route 'r' has both 'redirect' and 'directResponse'"),
    ("when2: x", "unknown"),
    ("timeout: 1s", "route 'r' has no destination"),
    ("redirect: {uri: /x}\ntimeout: 2s", "'timeout' has no effect with 'redirect'"),
    ("directResponse: {status: 503}\nfault: {abort: {httpStatus: 500, percentage: {value: 1}}}",
     "'fault' has no effect with 'directResponse'"),
    ("redirect: {redirectCode: 301}", "redirect must set uri, authority, scheme, port or derivePort"),
    ("redirect: {uri: /x, redirectCode: 304}", "redirectCode 304 is not one Envoy can send"),
    ("redirect: {scheme: ftp}", 'redirect scheme must be "http" or "https"'),
    ("directResponse: {status: 99}", "directResponse status 99 is not an HTTP status Istio accepts"),
    ("to: v1\nrewrite: {}", "rewrite must set uri, authority or uriRegexRewrite"),
    ("to: v1\nrewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}",
     "rewrite may set uri or uriRegexRewrite, not both"),
    ("to: v1\nrewrite: {uriRegexRewrite: {match: '(?<=a)b', rewrite: c}}",
     "rewrite.uriRegexRewrite.match is not an RE2 regex"),
    ("to: v1\nrewrite: {uriRegexRewrite: {match: '^/r/(a)', rewrite: '/x/\\2'}}",
     "rewrite.uriRegexRewrite.rewrite: \\2 names group 2, but the regex has 1 capture group(s)"),
    ("to: v1\nrewrite: {uriRegexRewrite: {match: '^/r/(a)', rewrite: '/x/$1'}}", None),
    ("to: v1\nrewrite: {uriRegexRewrite: {match: '^/r/(a)', rewrite: '/x/\\g<1>'}}",
     "a backslash must be followed by a digit (\\1 is group 1) or another backslash, not 'g'"),
    ("to: v1\nrewrite: {authority: a.example}\nheaders: {request: {set: {host: b.example}}}",
     "rewrite.authority and headers.request.set.host both set the authority"),
    ("to: v1\nheaders: {request: {remove: [host]}}", "headers.request.remove names 'host', which Istio drops"),
    ("to: v1\nheaders: {response: {set: {':status': '200'}}}", "headers.response.set names ':status'"),
    ("to: v1\nheaders: {request: {set: {'bad header': x}}}", "'bad header' is not a valid header name"),
    ("to: v1\ncorsPolicy: {allowMethods: [GET]}", "corsPolicy has no allowOrigins, so no origin is allowed"),
    ("to: v1\ncorsPolicy: {allowOrigin: ['*'], allowOrigins: [{exact: a}]}", "allowOrigin is deprecated"),
    ("to: v1\ncorsPolicy: {allowOrigins: [{exact: '*'}], allowCredentials: true}",
     "allows credentials for every origin"),
    ("to: v1\ncorsPolicy: {allowOrigins: [{exact: a}], allowMethods: [FETCH]}", "'FETCH' is not an HTTP method"),
    ("to: v1\ncorsPolicy: {allowOrigins: [{exact: a}], maxAge: 1500ms}", "maxAge must be whole seconds"),
])
def test_what_istio_would_refuse_or_ignore_is_refused_at_its_place(tmp_path: Path, body: str,
                                                                   message: str | None) -> None:
    app = with_route(body)
    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV, "apps/shop.yaml": app})
    proc = run_meshgen("render", cwd=repo)
    if message is None:  # accepted: RE2 substitutes only backslash groups, `$1` is literal text
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 1
    assert "apps/shop.yaml:" in proc.stderr and message in proc.stderr, proc.stderr


def test_a_rollout_must_name_a_route_that_forwards(tmp_path: Path) -> None:
    app = APP.replace("      routes:\n", "      rollout: {stable: v1, canary: v2, route: gone, steps: [100], "
                      "interval: 1m, policy: time}\n      routes:\n")
    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV, "apps/shop.yaml": app})
    proc = run_meshgen("render", cwd=repo)
    assert proc.returncode == 1
    assert "rollout.route 'gone' does not forward (`to`), so it has no weights to move" in proc.stderr
