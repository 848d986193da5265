"""Checks that Istio does not make (or makes only at admission, long after review).

Istio accepts much wrong config silently: weights that do not sum to 100 are normalised, a
subset that does not exist black-holes traffic, a fault without ``percentage`` faults nothing,
a route after a catch-all is dead. Each check here turns one of those into an error with the
place of the offending value and what to do about it. All checks are pure functions of one
merged App spec (:class:`generator.spec.config.EffectiveApp`) and return a list of
:class:`~generator.errors.SpecError`; nothing is raised.

Sources: istio/api ``networking/v1/virtual_service.proto`` and ``destination_rule.proto``
(field meanings), the CEL rules in Istio's CRDs (``duration(self) >= duration('1ms')``), and
istiod's ``pkg/config/validation`` (durations must be whole milliseconds; retries).
"""

from __future__ import annotations

import difflib
import re
from fractions import Fraction
from typing import Any, Iterator

from generator import resources
from generator.errors import Place, SpecError, as_yaml
from generator.render import analysis
from generator.routing import conditions, simulate
from generator.spec import schema
from generator.spec.config import EffectiveApp

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
BUILTIN_METRICS = ("request-success-rate", "request-duration-p99")


def parse_duration(text: str) -> int | None:
    """Nanoseconds of a Go/Istio duration string (``"1m30s"``, ``"500ms"``), or ``None`` if malformed.

    Istio's CRDs validate durations with CEL ``duration()``, which follows Go's
    ``time.ParseDuration`` (units ns, us, ms, s, m, h).
    """
    if not isinstance(text, str) or not text:
        return None
    pos, total = 0, Fraction(0)
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += Fraction(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        return None
    return int(total) if total.denominator == 1 else None


def duration_seconds(text: str) -> float:
    """Seconds of a duration already checked by :func:`check_duration`."""
    ns = parse_duration(text)
    if ns is None:
        raise ValueError(f"not a duration: {as_yaml(text)}")
    return ns / 1e9


def check_duration(value: Any, place: Place, what: str) -> list[SpecError]:
    """A duration must parse, be at least 1ms and be whole milliseconds (istiod ValidateDuration)."""
    ns = parse_duration(value) if isinstance(value, str) else None
    if ns is None:
        return [SpecError(f"{what}: {as_yaml(value)} is not a duration", place=place,
                          hint="write e.g. 500ms, 2s or 1m30s")]
    if ns < 1_000_000:
        return [SpecError(f"{what}: {as_yaml(value)} is shorter than 1ms, which Istio rejects", place=place)]
    if ns % 1_000_000:
        return [SpecError(f"{what}: {as_yaml(value)} is not a whole number of milliseconds, which istiod rejects",
                          place=place, hint="round it to milliseconds")]
    return []


def weights(to: Any) -> dict[str, int]:
    """A route's ``to`` in its version forms as ``{version: weight}``; the shorthand ``to: v1``
    means ``{v1: 100}``. (The destination forms: :func:`destinations`.)"""
    if isinstance(to, str):
        return {to: 100}
    return dict(to)


def is_version_form(to: Any) -> bool:
    """``to: v1`` or ``{v1: 90, v2: 10}``: versions of the app itself."""
    return isinstance(to, str) or (isinstance(to, dict) and not isinstance(to.get("host"), str))


def destinations(to: Any) -> list[dict[str, Any]]:
    """Every form of a route's ``to`` as a list of ``{host?, subset?, port?, weight?}``.

    ``to: v1`` is ``[{subset: v1, weight: 100}]``; ``{v1: 90, v2: 10}`` one item per version
    (by version name, as rendered); ``{host: ...}`` one item without weight unless given; a list
    stays as written. No ``host``: the app's own service. ``None`` (no ``to``) is the app's own
    service as a whole.
    """
    if to is None:
        return [{}]
    if is_version_form(to):
        return [{"subset": v, "weight": w} for v, w in sorted(weights(to).items())]
    if isinstance(to, dict):
        return [dict(to)]
    return [dict(item) for item in to]


def all_routes(spec: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """``(list key, index, route)`` of every route of an App spec: ``routes`` (HTTP), ``tcp``, ``tls``."""
    for key in ("routes", "tcp", "tls"):
        for i, route in enumerate(spec.get(key) or []):
            yield key, i, route


def check_app(app: EffectiveApp) -> list[SpecError]:
    """Every check of one merged App spec: the schema, and the checks Istio does not make on
    every part the schema accepts, so one run shows both.

    A part the schema refuses is not checked further (its errors would follow from the schema
    error): a route whose own subtree is refused, refused ``versions`` (no version reference
    is checked then), a refused ``service``, ``expose``, ``trafficPolicy`` or ``rollout``.
    Unknown fields are set aside before the other checks.
    """
    errors = schema.validate(app.data, "app.schema.json", app.place, app.key_place)
    if not errors:
        spec = app.spec
        errors.extend(_semantics(app, spec, set()))
        return errors
    data, refused = schema.accepted(app.data, "app.schema.json")
    spec = data.get("spec") if isinstance(data, dict) else None
    if isinstance(spec, dict):
        errors.extend(_semantics(app, spec, refused))
    return errors


def _semantics(app: EffectiveApp, spec: dict[str, Any], refused: set[tuple[Any, ...]]) -> Iterator[SpecError]:
    """The checks after the schema, on the parts of ``spec`` it accepts (``refused``: the key
    paths it refuses, empty for a valid spec)."""
    def ok(*keys: Any) -> bool:
        return schema.well_formed(refused, "spec", *keys)

    versions = spec.get("versions", {})  # no versions: an app routed to its service as a whole
    known_versions = versions if isinstance(versions, dict) and ok("versions") else None
    routes = spec.get("routes")
    if not isinstance(routes, list) or ("spec", "routes") in refused:
        routes = None  # not a list: no route to check
    if "service" in spec and ok("service") and (spec.get("expose") is None or ok("expose")) and ok("hosts"):
        yield from _check_host_names(app, spec)
    if routes is not None:
        usable = {i for i in range(len(routes)) if ok("routes", i)}
        yield from _check_routes(app, routes, known_versions, usable)
    if known_versions is not None and routes is not None and ok("routes") and ok("tcp") and ok("tls"):
        yield from _check_l4_routes(app, spec, known_versions)
    if all(ok(k) for k in ("routes", "tcp", "tls", "expose", "delegate", "hosts", "gateways", "serviceEntry")):
        yield from _check_shape(app, spec)
    if "serviceEntry" in spec and ok("serviceEntry") and "service" in spec and ok("service"):
        yield from _check_service_entry(app, spec)
    if ok("trafficPolicy"):
        yield from _istio_durations(app, spec.get("trafficPolicy"), ("spec", "trafficPolicy"), "istio.TrafficPolicy")
    for name, version in (versions.items() if isinstance(versions, dict) else ()):
        if ok("versions", name, "trafficPolicy") and isinstance(version, dict):
            yield from _istio_durations(app, version.get("trafficPolicy"),
                                        ("spec", "versions", name, "trafficPolicy"), "istio.TrafficPolicy")
    metadata = app.data.get("metadata") if isinstance(app.data, dict) else None
    if "rollout" in spec and ok("rollout") and "service" in spec and ok("service") and isinstance(metadata, dict) \
            and schema.well_formed(refused, "metadata") and known_versions is not None:
        if routes is not None and ok("routes") and ok("tcp") and ok("tls"):
            yield from _check_rollout(app, spec["rollout"], known_versions, spec)


#: RFC 1035/1123 limits of a DNS name, as Kubernetes checks them (IsDNS1123Subdomain).
MAX_HOST = 253
MAX_LABEL = 63


def check_host_name(host: str, place: Place, what: str) -> list[SpecError]:
    """A host must be a DNS-1123 subdomain of at most :data:`MAX_HOST` characters, each label
    (between dots) at most :data:`MAX_LABEL`; a leading ``*.`` (a wildcard) is allowed where
    Istio allows it and counted in the length. The characters are the schema's to check."""
    if len(host) > MAX_HOST:
        shown = host if len(host) <= 60 else host[:40] + "..." + host[-12:]
        return [SpecError(f"{what} {as_yaml(shown)} is {len(host)} characters; a DNS name has at most {MAX_HOST}",
                          place=place, hint="use a shorter name")]
    for label in host.removeprefix("*.").split("."):
        if len(label) > MAX_LABEL:
            return [SpecError(f"{what} {as_yaml(host)}: label {as_yaml(label[:20] + '...')} is {len(label)} characters; "
                              f"a DNS label has at most {MAX_LABEL}", place=place,
                              hint="shorten that part of the name")]
    return []


def _check_host_names(app: EffectiveApp, spec: dict[str, Any]) -> Iterator[SpecError]:
    yield from check_host_name(spec["service"]["host"], app.text_place("spec", "service", "host"), "service.host")
    for i, host in enumerate((spec.get("expose") or {}).get("hosts") or []):
        if host != "*":
            yield from check_host_name(host, app.text_place("spec", "expose", "hosts", i), "expose host")
    for i, host in enumerate(spec.get("hosts") or []):
        if host != "*":
            yield from check_host_name(host, app.text_place("spec", "hosts", i), "host")


def _missing_version(app: EffectiveApp, version: str, versions: dict[str, Any], place: Place, what: str) -> SpecError:
    known = ", ".join(sorted(versions))
    return SpecError(f"{what} refers to version {as_yaml(version)}, which is not in spec.versions ({known})",
                     place=place, hint="add it under spec.versions or use one of the listed versions")


def _check_routes(app: EffectiveApp, routes: list[dict[str, Any]], versions: dict[str, Any] | None,
                  usable: set[int] | None = None) -> Iterator[SpecError]:
    """The routes' checks; only the routes numbered in ``usable`` (default: all) are checked,
    and version references only when ``versions`` is known."""
    seen: dict[str, int] = {}
    catch_all: int | None = None
    for i, route in enumerate(routes):
        if usable is not None and i not in usable:
            continue
        at = ("spec", "routes", i)
        name = route["name"]
        if name in seen:
            yield SpecError(f"route name {as_yaml(name)} is used twice (first at route {seen[name] + 1})",
                            place=app.place(*at, "name"), hint="give every route its own name")
        seen.setdefault(name, i)
        if catch_all is not None:
            others = [r["name"] for j, r in enumerate(routes)
                      if j != i and isinstance(r, dict) and isinstance(r.get("name"), str)]
            close = difflib.get_close_matches(name, others, n=1, cutoff=0.75)
            yield SpecError(f"route {as_yaml(name)} comes after route {as_yaml(routes[catch_all]['name'])}, which has no "
                            "`when` and so matches every request: it can never be reached",
                            place=app.place(*at, "name"),
                            hint=f"did you mean route {as_yaml(close[0])}? An environment override with a new route "
                                 "name adds a route at the end" if close else
                                 "move the route without `when` to the end, or give it a `when`")
        if "when" not in route and catch_all is None:
            catch_all = i
        if "when" in route:  # parse errors now, beside the other errors of this app
            try:
                conditions.parse(route["when"], app.text_place(*at, "when"))
            except SpecError as e:
                yield e
        yield from _check_action(app, route, at, name, versions)
        if "to" in route:
            yield from _check_to(app, route["to"], at, name, versions)
        if "timeout" in route:
            yield from check_duration(route["timeout"], app.place(*at, "timeout"), f"route {as_yaml(name)} timeout")
        if "retries" in route:
            yield from _check_retries(app, route["retries"], at, name)
        if "fault" in route:
            yield from _check_fault(app, route["fault"], at, name)
        if "mirror" in route and versions is not None and route["mirror"]["version"] not in versions:
            yield _missing_version(app, route["mirror"]["version"], versions,
                                   app.place(*at, "mirror", "version"), f"route {as_yaml(name)} mirror")
        if "redirect" in route:
            yield from _check_redirect(app, route["redirect"], at, name)
        if "directResponse" in route:
            yield from _check_direct_response(app, route["directResponse"], at, name)
        if "rewrite" in route:
            yield from _check_rewrite(app, route, at, name)
        if "headers" in route:
            yield from _check_headers(app, route["headers"], at, name)
        if "corsPolicy" in route:
            yield from _check_cors(app, route["corsPolicy"], at, name)


#: Route fields that need a destination: with ``redirect`` or ``directResponse`` Envoy answers
#: by itself, and Istio would ignore them (timeout, retries, mirror) or refuse them (fault, rewrite).
_FORWARDING_ONLY = ("rewrite", "fault", "mirror", "retries", "timeout")
#: Redirect codes Istio translates (route.go ``ApplyRedirect``); others leave a route without an action.
_REDIRECT_CODES = (301, 302, 303, 307, 308)
_CORS_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "TRACE")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP token (RFC 9110)


def _check_to(app: EffectiveApp, to: Any, at: tuple, name: str,
              versions: dict[str, Any] | None) -> Iterator[SpecError]:
    """A route's ``to`` in any form: versions exist (not checked when ``versions`` is ``None``:
    the schema refused them), weights are integers summing to exactly 100."""
    if is_version_form(to):
        split = weights(to)
        for version in split:
            if versions is not None and version not in versions:
                where = app.place(*at, "to") if isinstance(to, str) else app.key_place(*at, "to", version)
                yield _missing_version(app, version, versions, where, f"route {name!r}")
        total = sum(split.values())
        if total != 100:
            yield SpecError(f"weights of route {name!r} sum to {total}, not 100 (Istio would normalise them silently)",
                            place=app.place(*at, "to"), hint="make the integer weights add up to exactly 100")
        return
    items = destinations(to)
    for j, item in enumerate(items):
        where = (*at, "to") if isinstance(to, dict) else (*at, "to", j)
        if "host" not in item and "subset" in item and versions is not None and item["subset"] not in versions:
            yield _missing_version(app, item["subset"], versions, app.place(*where, "subset"), f"route {name!r}")
        if "host" in item:
            yield from check_host_name(item["host"], app.text_place(*where, "host"), f"route {name!r}: host")
    given = [item.get("weight") for item in items]
    if len(items) > 1 and None in given:
        j = given.index(None)
        yield SpecError(f"route {name!r} sends to {len(items)} destinations, but destination {j + 1} has no weight",
                        place=app.place(*at, "to", j), hint="give every destination an integer `weight`; they add up to 100")
    elif len(items) > 1 or given != [None]:
        total = sum(w or 0 for w in given)
        if total != 100:
            yield SpecError(f"weights of route {name!r} sum to {total}, not 100 (Istio would normalise them silently)",
                            place=app.place(*at, "to"), hint="make the integer weights add up to exactly 100")
    seen = set()
    for j, item in enumerate(items):
        key = (item.get("host"), item.get("subset"), item.get("port"))
        if key in seen:
            yield SpecError(f"route {name!r} lists one destination twice", place=app.place(*at, "to", j),
                            hint="merge their weights into one entry")
        seen.add(key)


def _check_l4_routes(app: EffectiveApp, spec: dict[str, Any], versions: dict[str, Any]) -> Iterator[SpecError]:
    """``tcp`` and ``tls`` routes: names unique among all routes of the app, ``to`` as for HTTP,
    a route without ``match`` only last (it takes every connection), SNI hosts present."""
    seen: dict[str, str] = {r["name"]: "routes" for r in spec.get("routes") or []}
    for key in ("tcp", "tls"):
        routes = spec.get(key) or []
        for i, route in enumerate(routes):
            at = ("spec", key, i)
            name = route["name"]
            if name in seen:
                yield SpecError(f"route name {name!r} is used twice (also in {seen[name]})",
                                place=app.place(*at, "name"), hint="give every route its own name")
            seen.setdefault(name, key)
            if "match" not in route and i < len(routes) - 1:
                yield SpecError(f"{key} route {name!r} has no match and so takes every connection: the "
                                f"{key} routes after it can never be reached", place=app.place(*at, "name"),
                                hint="move it to the end, or give it a match")
            for j, block in enumerate(route.get("match") or []):
                if key == "tls" and not block.get("sniHosts"):
                    yield SpecError(f"tls route {name!r}: match {j + 1} has no sniHosts (Istio requires at least one)",
                                    place=app.key_place(*at, "match", j), hint="add sniHosts: [<host>]")
                for k, subnet in enumerate(block.get("destinationSubnets") or []):
                    if not _is_ip_or_cidr(subnet):
                        yield SpecError(f"{key} route {name!r}: destinationSubnets entry {subnet!r} is not an IP "
                                        "address or CIDR block", place=app.place(*at, "match", j, "destinationSubnets", k))
            yield from _check_to(app, route["to"], at, name, versions)


def _is_ip_or_cidr(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _check_shape(app: EffectiveApp, spec: dict[str, Any]) -> Iterator[SpecError]:
    """What an app renders must be something, and the new fields must fit together:
    a delegate has no hosts, gateways, expose or L4 routes (Istio: delegate VirtualServices
    carry HTTP routes only); an exposed app has routes; Gateway servers and their hosts."""
    renders = [k for k in ("routes", "tcp", "tls", "versions", "trafficPolicy", "serviceEntry") if spec.get(k)]
    if not renders:
        yield SpecError(f"app {app.name!r} renders nothing: it has no routes, tcp or tls routes, versions, "
                        "trafficPolicy or serviceEntry", place=app.key_place("spec"),
                        hint="add `routes` (a VirtualService), `trafficPolicy` or `versions` (a DestinationRule) "
                             "or `serviceEntry`")
    expose = spec.get("expose")
    if spec.get("delegate"):
        for key in ("hosts", "gateways", "expose", "tcp", "tls"):
            if key in spec:
                yield SpecError(f"a delegate VirtualService has no {key} (Istio: its routes are reached through "
                                "the route of another VirtualService that delegates to it)",
                                place=app.key_place("spec", key), hint=f"remove {key!r} or `delegate: true`")
        if not spec.get("routes"):
            yield SpecError("a delegate app needs routes", place=app.key_place("spec", "delegate"))
    if expose and not any(spec.get(k) for k in ("routes", "tcp", "tls")):
        yield SpecError(f"app {app.name!r} is exposed but has no routes, so its Gateway would lead nowhere",
                        place=app.key_place("spec", "expose"), hint="add `routes` (or `tcp` / `tls` routes)")
    if not expose:
        return
    servers = expose.get("servers")
    if servers and "tls" in expose:
        yield SpecError("expose.tls and expose.servers: the servers replace the default 80/443 ones",
                        place=app.key_place("spec", "expose", "tls"),
                        hint="put `tls: {mode: SIMPLE, credentialName: ...}` into the HTTPS server")
    if "httpsRedirect" in expose and "tls" not in expose:
        yield SpecError("expose.httpsRedirect needs expose.tls (without TLS there is nothing to redirect to)",
                        place=app.key_place("spec", "expose", "httpsRedirect"))
    numbers: dict[int, int] = {}
    for i, server in enumerate(servers or []):
        if not server.get("hosts") and not expose.get("hosts"):
            yield SpecError(f"expose.servers[{i}] has no hosts and expose.hosts is not set",
                            place=app.key_place("spec", "expose", "servers", i),
                            hint="add hosts to the server or expose.hosts")
        port = server.get("port") or {}
        number = port.get("number")
        if number in numbers:
            other = servers[numbers[number]]
            if (other.get("port") or {}).get("protocol", "").upper() != str(port.get("protocol", "")).upper():
                yield SpecError(f"expose.servers: port {number} is served with two protocols",
                                place=app.place("spec", "expose", "servers", i, "port", "number"))
        numbers.setdefault(number, i)
        if number is not None and not 1 <= number <= 65535:
            yield SpecError(f"expose.servers[{i}]: port {number} is not between 1 and 65535",
                            place=app.place("spec", "expose", "servers", i, "port", "number"))
        protocol = str(port.get("protocol", "")).upper()
        if protocol and protocol not in _GATEWAY_PROTOCOLS:
            yield SpecError(f"expose.servers[{i}]: protocol {port.get('protocol')!r} is not one Istio knows",
                            place=app.place("spec", "expose", "servers", i, "port", "protocol"),
                            hint=f"use one of {', '.join(_GATEWAY_PROTOCOLS)}")
        tls = server.get("tls") or {}
        mode = tls.get("mode")
        if protocol in ("HTTPS",) and not tls:
            yield SpecError(f"expose.servers[{i}]: an HTTPS server needs tls (Istio refuses it without)",
                            place=app.key_place("spec", "expose", "servers", i), hint="add tls: {mode: SIMPLE, credentialName: ...}")
        if mode in ("SIMPLE", "MUTUAL") and not (tls.get("credentialName") or tls.get("credentialNames")
                                                or tls.get("serverCertificate") or tls.get("tlsCertificates")):
            yield SpecError(f"expose.servers[{i}]: tls mode {mode} needs credentialName (or a certificate)",
                            place=app.key_place("spec", "expose", "servers", i, "tls"))
        if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and protocol not in ("TLS", "HTTPS", ""):
            yield SpecError(f"expose.servers[{i}]: tls mode {mode} needs protocol TLS (the gateway does not "
                            "terminate the connection)", place=app.place("spec", "expose", "servers", i, "port", "protocol"))


#: Server protocols of Istio's Gateway (protocol.Parse in pkg/config/protocol).
_GATEWAY_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "REDIS", "MYSQL", "TCP", "TLS", "UDP")
#: ServiceEntry port protocols istiod's ValidateProtocol accepts (case-insensitive).
_SERVICE_PROTOCOLS = _GATEWAY_PROTOCOLS


def _check_service_entry(app: EffectiveApp, spec: dict[str, Any]) -> Iterator[SpecError]:
    """A ServiceEntry as istiod validates it (``ValidateServiceEntry`` in
    ``pkg/config/validation/validation.go``): hosts, addresses, ports, resolution against
    endpoints, addresses and hosts, location, endpoints against ports."""
    import ipaddress

    entry = spec["serviceEntry"]
    at = ("spec", "serviceEntry")
    hosts = entry.get("hosts") or [spec["service"]["host"]]
    resolution = entry.get("resolution", "NONE")
    location = entry.get("location", "MESH_EXTERNAL")
    endpoints = entry.get("endpoints") or []
    addresses = entry.get("addresses") or []
    where_hosts = app.key_place(*at, "hosts") if "hosts" in entry else app.place("spec", "service", "host")
    for i, host in enumerate(hosts):
        place = app.place(*at, "hosts", i) if "hosts" in entry else where_hosts
        if host == "*":
            yield SpecError("a ServiceEntry host cannot be `*` (istiod refuses it)", place=place,
                            hint="name the external domain, or `*.domain`")
            continue
        if not _DOMAIN.fullmatch(host.removeprefix("*.")):
            yield SpecError(f"ServiceEntry host {host!r} is not a valid domain name (a wildcard only as `*.` in front)",
                            place=place)
            continue
        yield from check_host_name(host, place, "ServiceEntry host")
        if "." not in host and location != "MESH_INTERNAL":
            yield SpecError(f"ServiceEntry host {host!r} is a short name; outside the mesh a host is a domain "
                            "name", place=place, hint="write the full domain name (or location: MESH_INTERNAL)")
        if resolution in ("DNS", "DNS_ROUND_ROBIN") and not endpoints and host.startswith("*."):
            yield SpecError(f"resolution {resolution} without endpoints resolves each host by DNS, so host "
                            f"{host!r} cannot be a wildcard", place=place,
                            hint="use resolution: NONE (or DYNAMIC_DNS) for a wildcard host, or add endpoints")
        if resolution == "DYNAMIC_DNS" and not host.startswith("*."):
            yield SpecError(f"resolution DYNAMIC_DNS needs wildcard hosts; {host!r} is not one", place=place)
    cidr = False
    for i, address in enumerate(addresses):
        cidr = cidr or "/" in address
        try:
            ipaddress.ip_network(address, strict=False) if "/" in address else ipaddress.ip_address(address)
        except ValueError:
            yield SpecError(f"ServiceEntry address {address!r} is not an IP address or CIDR block",
                            place=app.place(*at, "addresses", i))
    if cidr and resolution not in ("NONE", "STATIC"):
        yield SpecError(f"CIDR addresses are allowed only with resolution NONE or STATIC, not {resolution}",
                        place=app.place(*at, "resolution") if "resolution" in entry else app.key_place(*at, "addresses"))
    names: set[str] = set()
    numbers: set[int] = set()
    for i, port in enumerate(entry.get("ports") or []):
        pat = (*at, "ports", i)
        name, number = port.get("name"), port.get("number")
        if name in names:
            yield SpecError(f"ServiceEntry port name {name!r} is used twice", place=app.place(*pat, "name"))
        if number in numbers:
            yield SpecError(f"ServiceEntry port {number} is listed twice", place=app.place(*pat, "number"))
        names.add(name)
        numbers.add(number)
        if name is not None and not schema.is_dns1123_label(str(name)):
            yield SpecError(f"ServiceEntry port name {name!r} is not a DNS-1123 label", place=app.place(*pat, "name"),
                            hint="lower-case letters, digits and '-', e.g. https or tcp-db")
        for key in ("number", "targetPort"):
            if key in port and not 1 <= port[key] <= 65535:
                yield SpecError(f"ServiceEntry port {key} {port[key]} is not between 1 and 65535",
                                place=app.place(*pat, key))
        if str(port.get("protocol", "")).upper() not in _SERVICE_PROTOCOLS:
            yield SpecError(f"ServiceEntry port protocol {port.get('protocol')!r} is not one Istio knows",
                            place=app.place(*pat, "protocol") if "protocol" in port else app.key_place(*pat),
                            hint=f"use one of {', '.join(_SERVICE_PROTOCOLS)}")
        if resolution == "DYNAMIC_DNS" and str(port.get("protocol", "")).upper() not in ("HTTP", "TLS", "GRPC", "HTTP2"):
            yield SpecError("resolution DYNAMIC_DNS supports only HTTP, TLS, GRPC and HTTP2 ports",
                            place=app.place(*pat, "protocol") if "protocol" in port else app.key_place(*pat))
    if "workloadSelector" in entry and endpoints:
        yield SpecError("a ServiceEntry has endpoints or a workloadSelector, not both",
                        place=app.key_place(*at, "workloadSelector"))
    if resolution == "NONE" and endpoints:
        yield SpecError("resolution NONE takes no endpoints (the caller's destination address is used)",
                        place=app.key_place(*at, "endpoints"), hint="use resolution: STATIC or DNS with endpoints")
    if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
        yield SpecError("resolution DNS_ROUND_ROBIN takes at most one endpoint", place=app.key_place(*at, "endpoints"))
    if resolution == "DYNAMIC_DNS":
        for key in ("addresses", "endpoints"):
            if entry.get(key):
                yield SpecError(f"resolution DYNAMIC_DNS takes no {key}", place=app.key_place(*at, key))
        if location not in ("MESH_EXTERNAL", "MESH_INTERNAL"):
            yield SpecError("resolution DYNAMIC_DNS needs location MESH_EXTERNAL or MESH_INTERNAL",
                            place=app.key_place(*at, "location"))
    for i, endpoint in enumerate(endpoints):
        ept = (*at, "endpoints", i)
        address = str(endpoint.get("address", ""))
        if resolution == "STATIC":
            if not (address.startswith("unix://") or _is_ip(address)):
                yield SpecError(f"resolution STATIC needs endpoint addresses that are IPs (or unix:// sockets), "
                                f"not {address!r}", place=app.place(*ept, "address") if "address" in endpoint
                                else app.key_place(*ept), hint="use resolution: DNS for a domain name")
        elif resolution in ("DNS", "DNS_ROUND_ROBIN") and not (_is_ip(address) or _DOMAIN.fullmatch(address)):
            yield SpecError(f"endpoint address {address!r} is not a valid domain name or IP address",
                            place=app.place(*ept, "address") if "address" in endpoint else app.key_place(*ept))
        for pname in endpoint.get("ports") or {}:
            if pname not in names:
                yield SpecError(f"endpoint port {pname!r} is not a port name of the ServiceEntry",
                                place=app.key_place(*ept, "ports", pname),
                                hint=f"ports of the entry: {', '.join(sorted(str(n) for n in names)) or 'none'}")
    if resolution != "NONE" and len(hosts) > 1:
        for port in entry.get("ports") or []:
            protocol = str(port.get("protocol", "")).upper()
            if protocol not in ("HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "TLS"):
                yield SpecError("several hosts with a port that is neither HTTP nor TLS: the proxy cannot tell the "
                                "hosts apart", place=app.key_place(*at, "ports"),
                                hint="one ServiceEntry per host, or resolution: NONE")
                break


_DOMAIN = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*\.?")


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_action(app: EffectiveApp, route: dict[str, Any], at: tuple, name: str,
                  versions: dict[str, Any] | None = None) -> Iterator[SpecError]:
    """``to``, ``redirect``, ``directResponse`` and ``delegate``: exactly one (none, in an app
    without versions: the app's own service); what Envoy answers itself or hands to a delegate
    has no use for forwarding fields (Istio: virtualservice.go ``validateHTTPRoute``, silent on some)."""
    actions = [k for k in ("to", "redirect", "directResponse", "delegate") if k in route]
    if not actions and not versions:
        return  # an app without versions: forward to its own service as a whole
    if not actions:
        yield SpecError(f"route {as_yaml(name)} has no destination", place=app.key_place(*at, "name"),
                        hint="add `to: <version>` (or `redirect` / `directResponse` to answer without a backend)")
        return
    if len(actions) > 1:
        yield SpecError(f"route {as_yaml(name)} has both {as_yaml(actions[0])} and {as_yaml(actions[1])}; a route either "
                        "forwards (`to`), redirects or answers directly", place=app.key_place(*at, actions[1]),
                        hint=f"keep one of {', '.join(actions)}")
        return
    if actions[0] != "to":
        for key in _FORWARDING_ONLY:
            if key in route:
                yield SpecError(f"route {as_yaml(name)}: {as_yaml(key)} has no effect with {as_yaml(actions[0])} (Envoy answers "
                                "the request itself and forwards nothing)", place=app.key_place(*at, key),
                                hint=f"remove {as_yaml(key)}, or forward with `to`")


def _check_redirect(app: EffectiveApp, redirect: dict[str, Any], at: tuple, name: str) -> Iterator[SpecError]:
    here = (*at, "redirect")
    if not {"uri", "authority", "scheme", "port", "derivePort"} & set(redirect):
        yield SpecError(f"route {as_yaml(name)}: redirect must set uri, authority, scheme, port or derivePort",
                        place=app.key_place(*here), hint="e.g. `redirect: {uri: /new, redirectCode: 301}`")
    code = redirect.get("redirectCode")
    if code is not None and code not in _REDIRECT_CODES:
        yield SpecError(f"route {as_yaml(name)}: redirectCode {code} is not one Envoy can send "
                        f"({', '.join(map(str, _REDIRECT_CODES))}); Istio would leave the route without an action",
                        place=app.place(*here, "redirectCode"), hint="use 301 (the default), 302, 303, 307 or 308")
    if redirect.get("scheme") not in (None, "http", "https"):
        yield SpecError(f"route {as_yaml(name)}: redirect scheme must be \"http\" or \"https\"",
                        place=app.place(*here, "scheme"))
    if "port" in redirect and not 1 <= redirect["port"] <= 65535:
        yield SpecError(f"route {as_yaml(name)}: redirect port must be between 1 and 65535", place=app.place(*here, "port"))


def _check_direct_response(app: EffectiveApp, direct: dict[str, Any], at: tuple, name: str) -> Iterator[SpecError]:
    here = (*at, "directResponse")
    if not 200 <= direct["status"] <= 599:
        yield SpecError(f"route {as_yaml(name)}: directResponse status {direct['status']} is not an HTTP status "
                        "Istio accepts (200-599)", place=app.place(*here, "status"))
    body = direct.get("body") or {}
    size = len((body.get("string") or body.get("bytes") or "").encode())
    if size > 100 * 1024:
        yield SpecError(f"route {as_yaml(name)}: directResponse body has {size} bytes; Istio warns above 100 KiB "
                        "and refuses 1 MiB, as every proxy holds it in memory", place=app.place(*here, "body"),
                        hint="serve large bodies from a backend")


def _check_rewrite(app: EffectiveApp, route: dict[str, Any], at: tuple, name: str) -> Iterator[SpecError]:
    rewrite = route["rewrite"]
    here = (*at, "rewrite")
    if not {"uri", "authority", "uriRegexRewrite"} & set(rewrite):
        yield SpecError(f"route {as_yaml(name)}: rewrite must set uri, authority or uriRegexRewrite", place=app.key_place(*here))
    if "uri" in rewrite and "uriRegexRewrite" in rewrite:
        yield SpecError(f"route {as_yaml(name)}: rewrite may set uri or uriRegexRewrite, not both",
                        place=app.key_place(*here, "uriRegexRewrite"))
    regex = rewrite.get("uriRegexRewrite")
    if regex is not None:
        if not regex.get("match") or "rewrite" not in regex:
            yield SpecError(f"route {as_yaml(name)}: rewrite.uriRegexRewrite needs match and rewrite",
                            place=app.key_place(*here, "uriRegexRewrite"))
        else:
            try:
                conditions.compiled(regex["match"])
            except Exception:  # noqa: BLE001  (re2.error)
                yield SpecError(f"route {as_yaml(name)}: rewrite.uriRegexRewrite.match is not an RE2 regex",
                                place=app.place(*here, "uriRegexRewrite", "match"),
                                hint="Envoy's regex_rewrite uses RE2 (https://github.com/google/re2/wiki/Syntax)")
            else:
                problem = simulate.rewrite_problem(regex["match"], str(regex["rewrite"]))
                if problem:  # RE2 GlobalReplace refuses it, and Envoy forwards the path unchanged
                    yield SpecError(f"route {name!r}: rewrite.uriRegexRewrite.rewrite: {problem}",
                                    place=app.place(*here, "uriRegexRewrite", "rewrite"),
                                    hint=r"Envoy substitutes \1 .. \9 (groups), \0 (the whole match) and \\ "
                                         "(a backslash); with anything else it leaves the path as it is")
    authority = {k for k in ((route.get("headers") or {}).get("request") or {}).get("set") or {}
                 if k.lower() in ("host", ":authority")}
    if rewrite.get("authority") and authority:
        yield SpecError(f"route {as_yaml(name)}: rewrite.authority and headers.request.set.{sorted(authority)[0]} both "
                        "set the authority", place=app.place(*here, "authority"), hint="keep rewrite.authority")


def _check_headers(app: EffectiveApp, headers: dict[str, Any], at: tuple, name: str) -> Iterator[SpecError]:
    for side in ("request", "response"):
        ops = headers.get(side) or {}
        for op in ("set", "add", "remove"):
            names = ops.get(op) or ([] if op == "remove" else {})
            for i, key in enumerate(names):
                where = app.place(*at, "headers", side, op, i) if op == "remove" else \
                    app.key_place(*at, "headers", side, op, key)
                low = key.lower()
                if side == "request" and op != "remove" and low in ("host", ":authority"):
                    continue  # Istio turns it into the authority rewrite
                if low.startswith(":") or low == "host":
                    yield SpecError(f"route {as_yaml(name)}: headers.{side}.{op} names {as_yaml(key)}, which Istio drops "
                                    "silently (pseudo-headers and host cannot be changed this way)", place=where,
                                    hint="set the authority with rewrite.authority" if side == "request" else None)
                elif not _HEADER_NAME.fullmatch(key):
                    yield SpecError(f"route {as_yaml(name)}: {as_yaml(key)} is not a valid header name", place=where)


def _check_cors(app: EffectiveApp, cors: dict[str, Any], at: tuple, name: str) -> Iterator[SpecError]:
    here = (*at, "corsPolicy")
    if "allowOrigin" in cors:
        yield SpecError(f"route {as_yaml(name)}: corsPolicy.allowOrigin is deprecated and ignored by current Istio",
                        place=app.key_place(*here, "allowOrigin"),
                        hint='use allowOrigins: [{exact: "https://example.com"}]')
    origins = cors.get("allowOrigins") or []
    if not origins:
        yield SpecError(f"route {as_yaml(name)}: corsPolicy has no allowOrigins, so no origin is allowed",
                        place=app.key_place(*here), hint='add allowOrigins: [{exact: "https://example.com"}]')
    for i, origin in enumerate(origins):
        value = next(iter(origin.values()), "") if origin else ""
        if not value:
            yield SpecError(f"route {as_yaml(name)}: corsPolicy.allowOrigins[{i}] is empty", place=app.place(*here, "allowOrigins", i))
        elif "regex" in origin:
            try:
                conditions.compiled(value)
            except Exception:  # noqa: BLE001
                yield SpecError(f"route {as_yaml(name)}: corsPolicy.allowOrigins[{i}].regex is not an RE2 regex",
                                place=app.place(*here, "allowOrigins", i, "regex"))
        if cors.get("allowCredentials") and origin.get("exact") == "*":
            yield SpecError(f"route {as_yaml(name)}: corsPolicy allows credentials for every origin (\"*\"), "
                            "which browsers refuse", place=app.place(*here, "allowOrigins", i),
                            hint="list the origins that may send credentials")
    for i, method in enumerate(cors.get("allowMethods") or []):
        if method not in _CORS_METHODS:
            yield SpecError(f"route {as_yaml(name)}: corsPolicy.allowMethods[{i}] {as_yaml(method)} is not an HTTP method Istio "
                            f"accepts ({', '.join(_CORS_METHODS)})", place=app.place(*here, "allowMethods", i))
    for field in ("allowHeaders", "exposeHeaders"):
        for i, header in enumerate(cors.get(field) or []):
            if not _HEADER_NAME.fullmatch(header):
                yield SpecError(f"route {as_yaml(name)}: corsPolicy.{field}[{i}] {as_yaml(header)} is not a valid header name",
                                place=app.place(*here, field, i))
    if "maxAge" in cors:
        seconds = parse_duration(cors["maxAge"])
        if seconds is None or seconds % 1_000_000_000 or seconds < 1_000_000_000:
            yield SpecError(f"route {as_yaml(name)}: corsPolicy.maxAge must be whole seconds, at least 1s "
                            "(Istio is accurate only to seconds)", place=app.place(*here, "maxAge"))


def _check_retries(app: EffectiveApp, retries: dict[str, Any], at: tuple, name: str) -> Iterator[SpecError]:
    if retries.get("attempts") == 0 and len(retries) > 1:
        others = ", ".join(k for k in retries if k != "attempts")
        yield SpecError(f"route {as_yaml(name)}: retries.attempts is 0, which disables retries, but {others} "
                        "is also set and would be ignored", place=app.place(*at, "retries", "attempts"),
                        hint="remove the other retry fields, or set attempts to 1 or more")
    yield from _istio_durations(app, retries, (*at, "retries"), "istio.HTTPRetry")


def _check_fault(app: EffectiveApp, fault: dict[str, Any], at: tuple, name: str) -> Iterator[SpecError]:
    for kind in ("delay", "abort"):
        if kind not in fault:
            continue
        block = fault[kind]
        if kind == "delay" and "percentage" not in block and "percent" in block:
            # the deprecated integer percent: istiod reads it when percentage is absent
            # (pilot/pkg/networking/core/route/route.go, TranslateFault); passed through verbatim
            if not 0 < block["percent"] <= 100:
                yield SpecError(f"route {name!r}: fault.delay.percent must be between 1 and 100 "
                                "(0 injects the delay into no request)",
                                place=app.place(*at, "fault", kind, "percent"),
                                hint="use `percentage: {value: N}`, Istio's current field")
            continue
        if "percentage" not in block:
            yield SpecError(f"route {as_yaml(name)}: fault.{kind} has no percentage, so Istio injects it into no request",
                            place=app.key_place(*at, "fault", kind),
                            hint="add `percentage: {value: 100}` to fault every request, or a smaller value")
        elif not 0 <= float(block["percentage"].get("value", 0)) <= 100:
            yield SpecError(f"route {as_yaml(name)}: fault.{kind}.percentage.value must be between 0 and 100",
                            place=app.place(*at, "fault", kind, "percentage", "value"))
    if "delay" in fault and "fixedDelay" not in fault["delay"]:
        yield SpecError(f"route {as_yaml(name)}: fault.delay needs fixedDelay", place=app.key_place(*at, "fault", "delay"))
    if "abort" in fault and not {"httpStatus", "grpcStatus", "http2Error"} & set(fault["abort"]):
        yield SpecError(f"route {as_yaml(name)}: fault.abort needs httpStatus", place=app.key_place(*at, "fault", "abort"))
    yield from _istio_durations(app, fault, (*at, "fault"), "istio.HTTPFaultInjection")


def rollout_route(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The route (HTTP, TCP or TLS) a spec's rollout names, if any."""
    name = (spec.get("rollout") or {}).get("route")
    return next((r for _, _, r in all_routes(spec) if r.get("name") == name), None)


def _check_rollout(app: EffectiveApp, rollout: dict[str, Any], versions: dict[str, Any],
                   spec: dict[str, Any]) -> Iterator[SpecError]:
    at = ("spec", "rollout")
    route = rollout_route(spec)
    to = (route or {}).get("to")
    if to is not None and not is_version_form(to):  # subsets named in the route's destinations
        items = destinations(to)
        subsets = [i.get("subset") for i in items]
        for key in ("stable", "canary"):
            if rollout[key] not in subsets:
                yield SpecError(f"rollout.{key} {rollout[key]!r} is not a subset the route {route['name']!r} sends to "
                                f"({', '.join(str(s) for s in subsets)})", place=app.place(*at, key),
                                hint="list both the stable and the canary subset in the route's `to`")
        if len(items) != 2 or len({(i.get("host"), i.get("port")) for i in items}) != 1:
            yield SpecError(f"rollout.route {route['name']!r} must send to exactly the stable and the canary subset "
                            "of one host, so the bot can move the weight between them", place=app.place(*at, "route"))
    else:
        for key in ("stable", "canary"):
            if rollout[key] not in versions:
                yield _missing_version(app, rollout[key], versions, app.place(*at, key), f"rollout.{key}")
    if rollout["stable"] == rollout["canary"]:
        yield SpecError("rollout.stable and rollout.canary are the same version", place=app.place(*at, "canary"),
                        hint="when the rollout is done, remove the rollout block or name the next canary")
    names = [r["name"] for _, _, r in all_routes(spec)]
    if route is None:
        yield SpecError(f"rollout.route {rollout['route']!r} is not a route of this app ({', '.join(names)})",
                        place=app.place(*at, "route"))
    elif "to" not in route:
        yield SpecError(f"rollout.route {rollout['route']!r} does not forward (`to`), so it has no weights to move",
                        place=app.place(*at, "route"), hint="name a route with `to`")
    steps = rollout.get("steps", [])
    if any(b <= a for a, b in zip(steps, steps[1:])) or (steps and steps[-1] != 100):
        yield SpecError(f"rollout.steps {steps} must increase strictly and end at 100", place=app.place(*at, "steps"))
    if "interval" in rollout:
        yield from check_duration(rollout["interval"], app.place(*at, "interval"), "rollout.interval")
    analysis = rollout.get("analysis") or {}
    policy = rollout.get("policy", "health")
    metrics = analysis.get("metrics") or []
    if policy == "metric" and not metrics:
        yield SpecError("policy `metric` needs at least one entry in rollout.analysis.metrics",
                        place=app.place(*at, "policy"))
    for i, metric in enumerate(metrics):
        if metric["name"] not in BUILTIN_METRICS and "query" not in metric:
            yield SpecError(f"metric {as_yaml(metric['name'])} is not built in and has no query",
                            place=app.place(*at, "analysis", "metrics", i, "name"),
                            hint=f"built-in metrics: {', '.join(BUILTIN_METRICS)}; otherwise add a PromQL `query`")
        if "min" not in metric and "max" not in metric and policy != "compare":
            yield SpecError(f"metric {as_yaml(metric['name'])} has neither min nor max",
                            place=app.place(*at, "analysis", "metrics", i), hint="add a threshold")
        if "query" in metric:
            yield from _check_query(app, spec, rollout, metric, i)
    yield from _check_gates(app, rollout.get("gates") or [])


def _check_gates(app: EffectiveApp, items: list[dict[str, Any]]) -> Iterator[SpecError]:
    """Gate names unique, ``onFailure`` only where a gate holds or fails, timeouts above zero,
    and ``$`` in a URL only as ``${NAME}`` (the one way to reference a secret)."""
    from generator.rollout import gates

    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        at = ("spec", "rollout", "gates", i)
        if item["name"] in seen:
            yield SpecError(f"gate name {as_yaml(item['name'])} is used twice (gates {seen[item['name']] + 1} and {i + 1})",
                            place=app.place(*at, "name"), hint="give each gate its own name")
        seen.setdefault(item["name"], i)
        if "onFailure" in item and item["kind"] not in gates.DEFAULT_ON_FAILURE:
            what = "it is recorded only" if item["kind"] == gates.POST_ROLLOUT else "a 2xx answer rolls back"
            yield SpecError(f"gate {as_yaml(item['name'])}: a {item['kind']} gate takes no onFailure ({what})",
                            place=app.key_place(*at, "onFailure"), hint="remove onFailure")
        if "timeout" in item and not (parse_duration(item["timeout"]) or 0) > 0:
            yield SpecError(f"gate {as_yaml(item['name'])}: timeout {as_yaml(item['timeout'])} must be longer than zero",
                            place=app.place(*at, "timeout"), hint="e.g. 10s")
        stray = gates.VARIABLE.sub("", item["url"])
        if "$" in stray:
            yield SpecError(f"gate {as_yaml(item['name'])}: the url holds a `$` that is not a ${{NAME}} reference",
                            place=app.text_place(*at, "url"),
                            hint="reference an environment variable as ${NAME}, e.g. ?token=${LOADTEST_TOKEN}")


def _check_query(app: EffectiveApp, spec: dict[str, Any], rollout: dict[str, Any], metric: dict[str, Any],
                 i: int) -> Iterator[SpecError]:
    """A custom metric's query template renders (Jinja2 syntax, known variables, sandbox), so
    a typo is an error now, not at the rollout's first analysis."""
    from generator.rollout import (
        metrics,  # imports the Prometheus client: only for apps with a custom query
    )

    host = str(spec["service"]["host"]).split(".")[0]
    target = metrics.Target(app.name, app.env, app.namespace, host, rollout["stable"], rollout["canary"])
    custom = metrics.Metric(metric["name"], metric["query"], metric.get("min"), metric.get("max"),
                            higher_is_better=False, index=i)
    try:
        metrics.render_query(custom, target, rollout["canary"], "1m")
    except metrics.MetricQueryError as e:
        yield SpecError(str(e), place=app.place("spec", "rollout", "analysis", "metrics", i, "query"),
                        hint="a query may use app, namespace, service, version, interval and env")


def _istio_durations(app: EffectiveApp, value: Any, at: tuple, definition: str) -> Iterator[SpecError]:
    """Check every field that Istio's CRD validates with CEL ``duration(self)`` under ``value``."""
    if value is None:
        return
    node = resources.schema("app.schema.json")["$defs"][definition]
    yield from _walk_durations(app, value, node, at)


def _walk_durations(app: EffectiveApp, value: Any, node: dict[str, Any], at: tuple) -> Iterator[SpecError]:
    rules = node.get("x-kubernetes-validations") or []
    if isinstance(value, str) and any("duration(self)" in r.get("rule", "") for r in rules):
        yield from check_duration(value, app.place(*at), schema.dotted(at[1:]))
    elif isinstance(value, dict):
        props = node.get("properties") or {}
        for key, sub in value.items():
            if key in props:
                yield from _walk_durations(app, sub, props[key], (*at, key))
            elif isinstance(node.get("additionalProperties"), dict):
                yield from _walk_durations(app, sub, node["additionalProperties"], (*at, key))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            yield from _walk_durations(app, item, node["items"], (*at, i))


def check_hosts(apps: list[EffectiveApp], service_host: dict[str, str]) -> list[SpecError]:
    """Two apps of one environment claiming one host (Istio merges their VirtualServices unpredictably).

    Args:
        apps: the merged App specs of one environment.
        service_host: ``{app name: FQDN of its service}``.

    Returns:
        One error per conflicting claim, naming both files.
    """
    owner: dict[str, tuple[EffectiveApp, Place]] = {}
    errors: list[SpecError] = []
    for app in apps:
        spec = app.spec
        claims = []
        # the service host is claimed by the app's DestinationRule, and by its VirtualService
        # unless `hosts` names other hosts (a VirtualService of aliases, or a delegate)
        if spec.get("versions") or spec.get("trafficPolicy") or (
                any(spec.get(k) for k in ("routes", "tcp", "tls")) and "hosts" not in spec and not spec.get("delegate")):
            claims.append((service_host[app.name], app.place("spec", "service", "host")))
        for i, host in enumerate((app.spec.get("expose") or {}).get("hosts", [])):
            claims.append((host, app.place("spec", "expose", "hosts", i)))
        for host, place in claims:
            if host in owner and owner[host][0].name != app.name:
                other, other_place = owner[host]
                errors.append(SpecError(
                    f"host {as_yaml(host)} is claimed by app {as_yaml(app.name)} and by app {as_yaml(other.name)} ({other_place}) "
                    f"in environment {as_yaml(app.env)}", place=place,
                    hint="each host may belong to one app per environment"))
            else:
                owner.setdefault(host, (app, place))
    return errors


def check_destinations(apps: list[EffectiveApp], service_host: dict[str, str],
                       external_hosts: list[str]) -> list[SpecError]:
    """Every destination host of a route (HTTP, TCP, TLS) must be known: the service of an app of
    the environment, a host of one of its ServiceEntries, or one of the environment's
    ``spec.externalHosts``. Istio accepts any host and black-holes what it cannot find.

    Args:
        apps: the merged App specs of one environment (each already valid).
        service_host: ``{app name: FQDN of its service}``.
        external_hosts: the environment's ``spec.externalHosts``.

    Returns:
        One error per unknown host, at the host in the spec.
    """
    known = set(service_host.values())
    patterns = list(external_hosts)
    for app in apps:
        entry = app.spec.get("serviceEntry")
        if entry is not None:
            patterns.extend(entry.get("hosts") or [app.spec["service"]["host"]])
    errors: list[SpecError] = []
    for app in apps:
        for key, i, route in all_routes(app.spec):
            to = route.get("to")
            if to is None or is_version_form(to):
                continue
            for j, item in enumerate(destinations(to)):
                if "host" not in item:
                    continue
                host = item["host"] if "." in item["host"] else f"{item['host']}.{app.namespace}.svc.cluster.local"
                if host in known or any(analysis.host_matches(p, host) for p in patterns):
                    continue
                at = ("spec", key, i, "to") if isinstance(to, dict) else ("spec", key, i, "to", j)
                errors.append(SpecError(
                    f"route {route['name']!r} sends to host {host}, which is no app's service, no ServiceEntry host "
                    f"and not in spec.externalHosts of environment {app.env!r}",
                    place=app.text_place(*at, "host"),
                    hint=f"check the name, or declare it in environments/{app.env}.yaml under spec.externalHosts"))
    return errors
