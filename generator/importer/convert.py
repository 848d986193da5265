"""Istio objects -> App specs, pure: group what belongs together, convert it, or say why not.

Grouping (one app per Service host and namespace; the host of a VirtualService's app is that of
its first destination, else its first host):

- the ``VirtualService``, ``DestinationRule`` and ``ServiceEntry`` of one host in one namespace
  make one app, named after the Service (``reviews``), or after the whole host for an outside
  one (``www-googleapis-com``); ``-<namespace>`` is added when the name is taken; a delegate
  VirtualService's app keeps its name, which its parent's ``delegate`` names;
- a ``Gateway`` goes to the app of the first VirtualService of its namespace bound to it, as
  that app's ``expose`` (selector and servers verbatim); other apps bind it by name.

Conversion follows what the renderer writes back (``generator/render/render.py`` and the
route compiler, ``generator/routing/compiler.py``): an Istio ``HTTPRoute``'s match blocks become
one ``when`` condition (blocks OR-ed, fields AND-ed, istio/api ``virtual_service.proto``
``HTTPMatchRequest``), its destinations a ``to`` (versions, which are the DestinationRule's
subsets, or destinations with host, port and weight; none for the app's own Service), ``tcp``
and ``tls`` routes keep their match blocks, and an HTTPRoute's other fields (``timeout``, ``retries``, ``fault``, ``rewrite``, ``redirect``,
``directResponse``, ``headers``, ``corsPolicy``, ``mirror``) pass through under Istio's names.
Each converted route list is compiled by :func:`generator.routing.compiler.compile_http`, so
a condition the compiler would refuse is refused here, with its reason; the spec's other checks
(its schema, Istio's fields) are ``meshgen render``'s, which places them in the written spec.

What the format cannot say is an :class:`Outcome` with an error placed at the value of the
input object (``path:line:col``) and the reason; the objects that can be said still are.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from generator.errors import Place, SpecError, SpecErrors
from generator.importer.read import IstioObject
from generator.render.analysis import fqdn  # Istio's resolution of a short host, as the analysis resolves it
from generator.routing import conditions as cond
from generator.routing.compiler import NO_ROUTE, SpecRoute, compile_http
from generator.spec.config import ATOMIC_KEYS

API_VERSION = "meshgen.io/v1alpha1"
#: The first line of every spec meshgen writes, as in the bundled specs.
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/app.schema.json"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")
#: HTTPRoute fields a spec route carries under Istio's own name.
_VERBATIM = ("timeout", "retries", "fault", "rewrite", "redirect", "directResponse", "headers", "corsPolicy")
#: HTTPMatchRequest fields and the condition predicate each becomes.
_STRING_FIELDS = {"uri": "uri", "method": "method", "authority": "authority", "scheme": "scheme"}


class Cannot(Exception):
    """The spec format cannot express this part of an object: ``message`` at ``place``."""

    def __init__(self, message: str, place: Place, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.place = place
        self.hint = hint


@dataclass
class Outcome:
    """What happened to one input object: imported into ``app`` or refused with ``error``."""

    obj: IstioObject
    app: str | None = None
    error: SpecError | None = None


@dataclass
class Result:
    """:func:`convert`'s answer.

    Attributes:
        apps: App documents (``apiVersion``, ``kind``, ``metadata``, ``spec``) by app name.
        outcomes: one per input object, in input order.
    """

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]


def _short(host: str, namespace: str) -> str:
    suffix = f".{namespace}.svc.cluster.local"
    return host[: -len(suffix)] if host.endswith(suffix) else host


# --------------------------------------------------------------------------- conditions


def _matcher(sm: Any, place: Place, what: str, *, presence: bool = True) -> str:
    """An Istio StringMatch as a condition matcher (``exact "x"``, ``present``, ...)."""
    if not isinstance(sm, dict) or len(sm) > 1:
        raise Cannot(f"{what}: a StringMatch has one of exact, prefix or regex", place)
    if not sm:
        if presence:
            return "present"
        raise Cannot(f"{what}: an empty match ({{}}) matches everything; leave it out", place,
                     hint="remove it, then import again")
    (kind, value), = sm.items()
    if kind not in ("exact", "prefix", "regex") or not isinstance(value, str):
        raise Cannot(f"{what}: unknown StringMatch {kind!r}", place)
    if kind == "regex" and value == "*" and presence:  # route.go canBeConvertedToPresentMatch
        return "present"
    return f"{kind} {cond.quote(value)}"


def _accepts_empty(sm: dict[str, Any]) -> bool:
    """Whether a StringMatch accepts ``""`` (Istio's ``withoutHeaders`` takes a missing header as "")."""
    if not sm:
        return True
    (kind, value), = sm.items()
    if kind in ("exact", "prefix"):
        return value == ""
    try:
        return cond.compiled(value).fullmatch("") is not None
    except Exception:  # an invalid regex: the compiler reports it
        return False


def block_condition(block: dict[str, Any], place: Any, namespace: str = "default") -> str:
    """One Istio match block as a condition: its fields AND-ed (``HTTPMatchRequest``).

    ``place(*keys)`` places a key of the block. Raises :class:`Cannot` for fields a condition
    cannot hold (``ignoreUriCase``, ``statPrefix``, an unknown field).
    """
    parts: list[str] = []
    for key, value in block.items():
        where = place(key)
        if key == "name":
            continue  # a match block's name only names Envoy stats
        if key in _STRING_FIELDS:
            parts.append(f"{_STRING_FIELDS[key]} {_matcher(value, where, key, presence=key != 'uri')}")
        elif key in ("headers", "queryParams"):
            word = "header" if key == "headers" else "query"
            for name, sm in (value or {}).items():
                parts.append(f"{word} {cond.quote(str(name))} {_matcher(sm, place(key, name), f'{key}.{name}')}")
        elif key == "withoutHeaders":
            for name, sm in (value or {}).items():
                m = _matcher(sm, place(key, name), f"withoutHeaders.{name}")
                if m == "present":
                    parts.append(f"not header {cond.quote(str(name))} present")
                elif _accepts_empty(sm):  # Istio matches a missing header as "", then inverts
                    parts.append(f"header {cond.quote(str(name))} present and not header {cond.quote(str(name))} {m}")
                else:
                    parts.append(f"not header {cond.quote(str(name))} {m}")
        elif key == "port":
            if not isinstance(value, int) or isinstance(value, bool):
                raise Cannot("port: expected a number", where)
            parts.append(f"port {value}")
        elif key == "sourceLabels":
            for k, v in (value or {}).items():
                parts.append(f"source label {cond.quote(str(k))} = {cond.quote(str(v))}")
        elif key == "sourceNamespace":
            parts.append(f"source namespace {cond.quote(str(value))}")
        elif key == "gateways":
            gws = [f"gateway {cond.quote(g if g == 'mesh' or '/' in g else f'{namespace}/{g}')}"
                   for g in map(str, value or [])]
            if gws:
                parts.append(gws[0] if len(gws) == 1 else "(" + " or ".join(gws) + ")")
        elif key == "ignoreUriCase":
            if value:
                raise Cannot("ignoreUriCase: a condition matches the path case-sensitively, as Envoy does "
                             "by default; there is no case-insensitive uri predicate", where,
                             hint="write the cases out with a regex, e.g. uri regex \"/[Aa]pi/.*\"")
        else:
            raise Cannot(f"match field {key!r} cannot be expressed in a condition", where)
    return " and ".join(parts)


def _condition(matches: list[dict[str, Any]], place: Any, namespace: str) -> str | None:
    if not matches:
        return None
    terms = [block_condition(b, lambda *k, i=i: place(i, *k), namespace) if isinstance(b, dict) else "" for i, b in enumerate(matches)]
    if any(t == "" for t in terms):
        return None  # an empty block matches everything
    if len(terms) == 1:
        return terms[0]
    return " or ".join(f"({t})" if " and " in t or " or " in t else t for t in terms)


# --------------------------------------------------------------------------- routes


_OMIT = object()


@dataclass
class _App:
    namespace: str
    host: str  # the Service's FQDN
    host_written: str = ""  # as the objects write it (short or FQDN)
    vs: IstioObject | None = None
    dr: IstioObject | None = None
    se: IstioObject | None = None
    gateway: IstioObject | None = None  # the Gateway the app exposes
    name: str = ""
    port: int | None = None
    versions: set[str] = field(default_factory=set)

    @property
    def members(self) -> list[IstioObject]:
        return [o for o in (self.se, self.dr, self.vs, self.gateway) if o is not None]


def _port_of(dest: dict[str, Any]) -> int | None:
    port = dest.get("port")
    return port.get("number") if isinstance(port, dict) else port


def _destinations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every destination of a VirtualService's routes (http, tcp, tls) and mirrors, in order."""
    out = []
    for section in ("http", "tcp", "tls"):
        for route in spec.get(section) or []:
            if not isinstance(route, dict):
                continue
            for d in route.get("route") or []:
                if isinstance(d, dict) and isinstance(d.get("destination"), dict):
                    out.append(d["destination"])
            if isinstance(route.get("mirror"), dict):
                out.append(route["mirror"])
    return out


def _to(dests: Any, obj: IstioObject, at: tuple[Any, ...], app: _App) -> Any:
    """A route's Istio destinations as a spec ``to`` (:data:`_OMIT`: leave ``to`` out)."""
    if not isinstance(dests, list) or not dests:
        raise Cannot("a route without destinations", obj.place(*at))
    items = []
    for j, d in enumerate(dests):
        dest = (d or {}).get("destination") if isinstance(d, dict) else None
        if not isinstance(dest, dict) or not isinstance(dest.get("host"), str):
            raise Cannot("a destination without host", obj.place(*at, j))
        for key in d:
            if key not in ("destination", "weight", "headers"):
                raise Cannot(f"destination field {key!r} has no counterpart in a spec", obj.key_place(*at, j, key))
        if "headers" in d:
            raise Cannot("headers on one destination have no counterpart in a spec (a route's headers do)",
                         obj.key_place(*at, j, "headers"))
        for key in dest:
            if key not in ("host", "subset", "port"):
                raise Cannot(f"destination field {key!r} has no counterpart in a spec",
                             obj.key_place(*at, j, "destination", key))
        own = fqdn(dest["host"], obj.namespace) == app.host
        port = _port_of(dest)
        item: dict[str, Any] = {}
        if not own:
            item["host"] = dest["host"]
        if dest.get("subset"):
            item["subset"] = dest["subset"]
            if own and dest["subset"] not in app.versions:
                raise Cannot(f"subset {dest['subset']!r} of {dest['host']} is defined by no DestinationRule of this "
                             "import: a spec's versions are its DestinationRule's subsets",
                             obj.place(*at, j, "destination", "subset"),
                             hint="import the DestinationRule of the host with it")
        if own and port != app.port:
            if port is None:
                raise Cannot(f"a destination of {app.host} without port, where the app's other routes name "
                             f"port {app.port}", obj.place(*at, j, "destination"), hint="give it the port")
            item["port"] = port
        elif not own and port is not None:
            item["port"] = port
        weight = d.get("weight")
        if weight is not None and (not isinstance(weight, int) or isinstance(weight, bool)):
            raise Cannot("a weight is an integer percent", obj.place(*at, j, "weight"))
        items.append((item, weight, own))
    if len(items) == 1 and items[0][1] in (None, 100):
        item, _, own = items[0]
        if own and set(item) <= {"subset"}:
            if "subset" in item:
                return item["subset"] if item["subset"] in app.versions else {"host": app.host_written, **item}
            return _OMIT if not app.versions else {"host": app.host_written}
        return {"host": app.host_written, **item} if own else item
    if any(w is None for _, w, _ in items):
        raise Cannot("a weight is missing: each of several destinations needs one", obj.place(*at))
    total = sum(w for _, w, _ in items)
    if total != 100:
        raise Cannot(f"weights sum to {total}, not 100: a spec states them exactly", obj.place(*at),
                     hint="make them sum to 100")
    subsets = [i.get("subset") for i, _, _ in items]
    if all(own and set(i) == {"subset"} and i["subset"] in app.versions for i, _, own in items) \
            and len(set(subsets)) == len(subsets):
        return {i["subset"]: w for i, w, _ in items}
    return [{**i, "weight": w} for i, w, _ in items]


def _name(raw: Any, prefix: str, i: int, names: set[str]) -> str:
    name = raw if isinstance(raw, str) and _LABEL.match(raw) and len(raw) <= 63 and raw not in names \
        and raw != "no-route" and "-guard-" not in raw else f"{prefix}-{i + 1}"
    while name in names:
        name += "-x"
    names.add(name)
    return name


def _route(http: Any, i: int, obj: IstioObject, app: _App, names: set[str]) -> dict[str, Any]:
    """One Istio HTTPRoute as a spec route."""
    at = ("http", i)
    if not isinstance(http, dict):
        raise Cannot("an HTTP route is a mapping", obj.place(*at))
    route: dict[str, Any] = {"name": _name(http.get("name"), "route", i, names)}
    when = _condition(http.get("match") or [], lambda *k: obj.place(*at, "match", *k), obj.namespace)
    if when is not None:
        route["when"] = when
    for key in http:
        if key in ("name", "match", "route", "mirror", "mirrorPercentage", "delegate", *_VERBATIM):
            continue
        raise Cannot(f"HTTPRoute field {key!r} has no counterpart in a spec route", obj.key_place(*at, key))
    if "route" in http:
        to = _to(http["route"], obj, (*at, "route"), app)
        if to is not _OMIT:
            route["to"] = to
    if "delegate" in http:
        route["delegate"] = copy.deepcopy(http["delegate"])
    for key in _VERBATIM:
        if key in http:
            route[key] = copy.deepcopy(http[key])
    if "mirror" in http:
        m = http["mirror"]
        if not (isinstance(m, dict) and fqdn(str(m.get("host")), obj.namespace) == app.host
                and m.get("subset") in app.versions and _port_of(m) == app.port and set(m) <= {"host", "subset", "port"}):
            raise Cannot("a spec mirrors to a version of the app itself (its own host, a subset, the "
                         "service port)", obj.place(*at, "mirror"))
        route["mirror"] = {"version": m["subset"]}
        pct = http.get("mirrorPercentage")
        if pct is not None:
            value = pct.get("value") if isinstance(pct, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise Cannot("mirrorPercentage without a value", obj.place(*at, "mirrorPercentage"))
            route["mirror"]["percent"] = value
    elif "mirrorPercentage" in http:
        raise Cannot("mirrorPercentage without mirror", obj.key_place(*at, "mirrorPercentage"))
    return route


def _l4_route(route: Any, section: str, i: int, obj: IstioObject, app: _App, names: set[str]) -> dict[str, Any]:
    """One Istio TCPRoute or TLSRoute as a spec ``tcp``/``tls`` route (match blocks verbatim)."""
    at = (section, i)
    if not isinstance(route, dict):
        raise Cannot(f"a {section} route is a mapping", obj.place(*at))
    for key in route:
        if key not in ("match", "route"):
            raise Cannot(f"{section} route field {key!r} has no counterpart in a spec", obj.key_place(*at, key))
    out: dict[str, Any] = {"name": _name(None, section, i, names)}
    if route.get("match"):
        out["match"] = copy.deepcopy(route["match"])
    to = _to(route.get("route"), obj, (*at, "route"), app)
    out["to"] = {"host": app.host_written} if to is _OMIT else to
    return out


# --------------------------------------------------------------------------- grouping


def _meta(obj: IstioObject) -> Place:
    return obj.doc.place(*obj.at, "metadata", "name")


def _gateway_key(ref: str, namespace: str) -> tuple[str, str]:
    ns, _, name = ref.rpartition("/")
    return (ns or namespace, name)


def convert(objects: list[IstioObject], existing: dict[str, tuple[str, str]] | None = None) -> Result:
    """The App specs the objects make, and one :class:`Outcome` per object.

    Args:
        objects: what :func:`generator.importer.read.read` returned, over every input file.
        existing: the config repository's apps, ``{name: (namespace, service FQDN)}``: an app
            of the same namespace and host keeps its name; another takes ``<name>-<namespace>``.

    Returns:
        A :class:`Result`. An object is refused (its outcome has the error) when the spec
        format cannot express it, naming the value and the reason; an app is written only from
        objects that all convert.
    """
    result = Result()
    outcomes = {id(o): Outcome(o) for o in objects}
    result.outcomes = [outcomes[id(o)] for o in objects]
    apps: dict[tuple[str, str], _App] = {}

    def fail(obj: IstioObject, message: str, place: Place | None = None, hint: str | None = None) -> None:
        outcomes[id(obj)].error = SpecError(message, place=place or _meta(obj), hint=hint)

    def app_of(ns: str, host: str, written: str) -> _App:
        app = apps.get((ns, host))
        if app is None:
            app = apps[(ns, host)] = _App(ns, host, written)
        return app

    gateways = {(o.namespace, o.name): o for o in objects if o.kind == "Gateway"}
    for obj in objects:
        if obj.kind != "VirtualService":
            continue
        dests = _destinations(obj.spec)
        hosts = obj.spec.get("hosts") or []
        if dests and isinstance(dests[0].get("host"), str):
            written = dests[0]["host"]
        elif hosts and isinstance(hosts[0], str) and not hosts[0].startswith("*"):
            written = hosts[0]
        else:
            fail(obj, "a VirtualService without destinations and without a host to name its app by",
                 obj.place("hosts"), hint="import it with a route to its service")
            continue
        app = app_of(obj.namespace, fqdn(written, obj.namespace), written)
        if app.vs is not None:
            fail(obj, f"a second VirtualService sending to {written} (the first: {app.vs.ref} in {app.vs.doc.path}); "
                      "an app renders one VirtualService", obj.place("hosts"),
                 hint="merge their routes into one VirtualService, or import them separately")
            continue
        app.vs = obj
    for obj in objects:
        if obj.kind != "DestinationRule":
            continue
        host = obj.spec.get("host")
        if not isinstance(host, str) or not host:
            fail(obj, "DestinationRule without spec.host", obj.place())
            continue
        app = app_of(obj.namespace, fqdn(host, obj.namespace), host)
        if app.dr is not None:
            fail(obj, f"a second DestinationRule for host {host} in namespace {obj.namespace} (the first: "
                      f"{app.dr.ref} in {app.dr.doc.path}); Istio uses only one", obj.place("host"),
                 hint="import one of them")
            continue
        app.dr = obj
    for obj in objects:
        if obj.kind != "ServiceEntry":
            continue
        hosts = [h for h in obj.spec.get("hosts") or [] if isinstance(h, str)]
        if not hosts:
            fail(obj, "a ServiceEntry without hosts", obj.place())
            continue
        app = next((apps[(obj.namespace, fqdn(h, obj.namespace))] for h in hosts
                    if (obj.namespace, fqdn(h, obj.namespace)) in apps
                    and apps[(obj.namespace, fqdn(h, obj.namespace))].se is None), None)
        if app is None:
            app = app_of(obj.namespace, fqdn(hosts[0], obj.namespace), hosts[0])
        if app.se is not None:
            fail(obj, f"a second ServiceEntry for host {hosts[0]} (the first: {app.se.ref})", obj.place("hosts"))
            continue
        app.se = obj
    bound: dict[tuple[str, str], list[IstioObject]] = {}
    for app in apps.values():
        if app.vs is None:
            continue
        for ref in app.vs.spec.get("gateways") or []:
            if ref == "mesh" or not isinstance(ref, str):
                continue
            key = _gateway_key(ref, app.namespace)
            bound.setdefault(key, []).append(app.vs)
            gw = gateways.get(key)
            if gw is None or app.gateway is not None or any(a.gateway is gw for a in apps.values()):
                continue
            if gw.namespace == app.namespace:
                app.gateway = gw
    outside = "leave it outside the repository and list it in the environments' spec.externalGateways"
    for key, gw in gateways.items():
        if any(a.gateway is gw for a in apps.values()):
            continue
        binders = bound.get(key, [])
        if not binders:
            fail(gw, "a Gateway that no VirtualService of this import binds: a spec exposes a Gateway together "
                     "with the routes bound to it (a Gateway without routes leads nowhere)",
                 hint="import it with the VirtualServices bound to it")
        elif all(vs.namespace != gw.namespace for vs in binders):
            fail(gw, f"a Gateway shared by VirtualServices of other namespaces ({binders[0].ref}): a spec exposes "
                     "a Gateway in its app's own namespace", hint=outside)
        else:
            fail(gw, f"a second Gateway bound by {binders[0].ref}: an app exposes one Gateway", hint=outside)

    existing = existing or {}
    known = {identity: name for name, identity in existing.items()}
    used = set(existing)
    for (ns, host), app in sorted(apps.items()):
        short = host
        if "." not in short or short.endswith(".svc.cluster.local"):
            short = short.split(".")[0]  # a Service: its name
        base = re.sub(r"[^a-z0-9-]+", "-", short.lstrip("*.").lower()).strip("-")[:63].rstrip("-") or "app"
        if app.vs is not None and not app.vs.spec.get("hosts") and _LABEL.match(app.vs.name):
            name = app.vs.name  # a delegate: other VirtualServices name it (delegate.name)
        elif (ns, host) in known:
            name = known[(ns, host)]
        else:
            name = base if base not in used else f"{base}-{ns}"[:63].rstrip("-")
        used.add(name)
        app.name = name
        doc = None
        while True:
            members = [o for o in app.members if outcomes[id(o)].error is None]
            if not members:
                break
            try:
                doc = _app_spec(app)
                break
            except Cannot as e:
                culprit = _culprit(members, e.place)
                fail(culprit, e.message, e.place, e.hint)
            except SpecErrors as e:
                first = e.errors[0]
                culprit = _culprit(members, first.place)
                fail(culprit, first.message, first.place, first.hint)
            # the app again without the object that cannot be expressed
            app.vs, app.dr, app.se, app.gateway = (o if o is not None and outcomes[id(o)].error is None else None
                                                   for o in (app.vs, app.dr, app.se, app.gateway))
        if doc is None:
            continue
        result.apps[name] = doc
        for o in app.members:
            outcomes[id(o)].app = name
    return result


def _culprit(members: list[IstioObject], place: Place | None) -> IstioObject:
    """The object whose text holds ``place`` (the one starting last before it in its file)."""
    best = members[0]
    start = None
    for o in members:
        begins = o.doc.place(*o.at)
        if place is not None and o.doc.path == place.path and begins <= place and (start is None or begins > start):
            best, start = o, begins
    return best


def _exported(app: _App) -> Any:
    values = {}
    for o in app.members:
        if o.kind != "Gateway":
            values[o.ref] = o.spec.get("exportTo")
    distinct = {repr(v) for v in values.values()}
    if len(distinct) > 1:
        o = next(o for o in app.members if o.kind != "Gateway" and o.spec.get("exportTo") != next(iter(values.values())))
        raise Cannot("exportTo differs between the objects of one app; a spec gives one exportTo to all of them",
                     o.key_place("exportTo") if "exportTo" in o.spec else _meta(o))
    return next(iter(values.values()), None)


def _app_spec(app: _App) -> dict[str, Any]:
    """The App document of one grouped app; raises :class:`Cannot` or :class:`SpecErrors`."""
    spec: dict[str, Any] = {}
    export = _exported(app)
    versions: dict[str, Any] = {}
    dr, vs, se, gw = app.dr, app.vs, app.se, app.gateway
    if dr is not None:
        for key in dr.spec:
            if key not in ("host", "trafficPolicy", "subsets", "exportTo"):
                raise Cannot(f"DestinationRule field {key!r} has no counterpart in a spec", dr.key_place(key))
        for i, subset in enumerate(dr.spec.get("subsets") or []):
            if not isinstance(subset, dict):
                raise Cannot("a subset is a mapping", dr.place("subsets", i))
            name = subset.get("name")
            if not isinstance(name, str) or not _LABEL.match(name):
                raise Cannot(f"subset name {name!r} is not a DNS-1123 label, which a version name must be",
                             dr.place("subsets", i, "name"))
            for key in subset:
                if key not in ("name", "labels", "trafficPolicy"):
                    raise Cannot(f"subset field {key!r} has no counterpart in a spec version",
                                 dr.key_place("subsets", i, key))
            versions[name] = {}
            if subset.get("labels"):
                versions[name]["labels"] = dict(subset["labels"])
            if subset.get("trafficPolicy") is not None:
                versions[name]["trafficPolicy"] = copy.deepcopy(subset["trafficPolicy"])
    app.versions = set(versions)
    if vs is not None:
        own = [d for d in _destinations(vs.spec) if isinstance(d.get("host"), str)
               and fqdn(d["host"], vs.namespace) == app.host]
        ports = [_port_of(d) for d in own]
        if ports and None not in ports:
            app.port = max(set(ports), key=ports.count)
    service: dict[str, Any] = {"host": app.host_written}
    if app.port:
        service["port"] = app.port
    spec["service"] = service
    if versions:
        spec["versions"] = versions
    if dr is not None and dr.spec.get("trafficPolicy") is not None:
        spec["trafficPolicy"] = copy.deepcopy(dr.spec["trafficPolicy"])
    if se is not None:
        entry = {k: copy.deepcopy(v) for k, v in se.spec.items() if k != "exportTo"}
        if entry.get("hosts") == [app.host_written]:
            del entry["hosts"]
        spec["serviceEntry"] = entry
    if gw is not None and vs is None:
        raise Cannot("the VirtualService bound to this Gateway cannot be imported, and a spec exposes a "
                     "Gateway together with its routes", _meta(gw))
    if gw is not None:
        for key in gw.spec:
            if key not in ("selector", "servers"):
                raise Cannot(f"Gateway field {key!r} has no counterpart in a spec's expose", gw.key_place(key))
        if not _LABEL.match(gw.name):
            raise Cannot(f"Gateway name {gw.name!r} is not a DNS-1123 label", _meta(gw))
        servers = gw.spec.get("servers") or []
        for i, server in enumerate(servers):
            if not isinstance(server, dict) or not server.get("hosts"):
                raise Cannot("a Gateway server without hosts", gw.place("servers", i))
        expose: dict[str, Any] = {"name": gw.name}
        if gw.spec.get("selector"):
            expose["selector"] = dict(gw.spec["selector"])
        expose["servers"] = copy.deepcopy(servers)
        spec["expose"] = expose
    if vs is not None:
        for key in vs.spec:
            if key not in ("hosts", "gateways", "http", "tcp", "tls", "exportTo"):
                raise Cannot(f"VirtualService field {key!r} has no counterpart in a spec", vs.key_place(key))
        hosts = vs.spec.get("hosts")
        for i, h in enumerate(hosts or []):
            if not isinstance(h, str) or not _HOST.match(h):
                raise Cannot(f"host {h!r} is not a lowercase DNS name, a wildcard (*.domain) or *, which a spec's "
                             "hosts are", vs.place("hosts", i))
        if not hosts:
            spec["delegate"] = True
        elif [fqdn(h, vs.namespace) for h in hosts] != [app.host] or gw is not None:
            spec["hosts"] = list(hosts)
        refs = [g for g in vs.spec.get("gateways") or [] if isinstance(g, str)]
        if gw is not None:
            refs = [g for g in refs if _gateway_key(g, vs.namespace) != (gw.namespace, gw.name)]
            spec["gateways"] = refs
        elif refs and refs != ["mesh"]:
            spec["gateways"] = refs
        names: set[str] = set()
        http = vs.spec.get("http") or []
        routes = [_route(r, i, vs, app, names) for i, r in enumerate(http)]
        for i, r in enumerate(routes[:-1]):
            if "when" not in r:
                raise Cannot("a route that takes every request before the last: the routes after it are never "
                             "reached, and a spec puts its catch-all last", vs.place("http", i),
                             hint="remove the routes after it")
        if routes:
            # what the renderer will compile: refuse here what it would refuse
            compiled = compile_http([SpecRoute(r["name"], r.get("when"), {}) for r in routes])
            if compiled[-1].get("name") == NO_ROUTE:
                raise Cannot("no match block of it applies to every caller on every port: there istiod leaves the "
                             "VirtualService out and sends requests to the Service as a whole, where a spec means "
                             "404 (meshgen renders a last route answering 404)", vs.place("http"),
                             hint="add a last route without match to the host, if that is what is meant")
            spec["routes"] = routes
        for section in ("tcp", "tls"):
            l4 = [_l4_route(r, section, i, vs, app, names) for i, r in enumerate(vs.spec.get(section) or [])]
            if l4:
                spec[section] = l4
        if not (routes or spec.get("tcp") or spec.get("tls")):
            raise Cannot("a VirtualService without routes", vs.place())
    if export is not None:
        spec["exportTo"] = copy.deepcopy(export)
    doc = {"apiVersion": API_VERSION, "kind": "App",
           "metadata": {"name": app.name, "namespace": app.namespace}, "spec": spec}
    return doc

# --------------------------------------------------------------------------- environment overrides


def _diff(base: Any, new: Any, key: Any = None) -> Any:
    """What an override must hold so that merging it into ``base`` gives ``new``
    (:func:`generator.spec.config._merge`'s rules); ``_SAME`` when nothing."""
    if base == new:
        return _SAME
    if isinstance(base, dict) and isinstance(new, dict) and key not in ATOMIC_KEYS:
        out: dict[str, Any] = {}
        for k, v in new.items():
            if k not in base:
                out[k] = copy.deepcopy(v)
            else:
                d = _diff(base[k], v, k)
                if d is not _SAME:
                    out[k] = d
        for k in base:
            if k not in new:
                out[k] = None  # null deletes the key
        return out
    if _named(base) and _named(new):
        items = []
        olds = {i["name"]: i for i in base}
        for item in new:
            if item["name"] in olds:
                d = _diff(olds[item["name"]], item)
                if d is not _SAME:
                    items.append({"name": item["name"], **d})
            else:
                items.append(copy.deepcopy(item))
        return items
    return copy.deepcopy(new)


_SAME = object()


def _named(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) and "name" in i for i in value)


def override(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The environment override (``spec.apps.<app>``: ``{"spec": {...}}``) that turns the App
    document ``base`` into ``new`` when an environment's overrides are deep-merged
    (mappings key by key, ``to``/``labels``/``selector`` whole, routes by name, ``null``
    deletes); ``None`` when they do not differ.

    Raises:
        Cannot: the difference is none an override can make (routes removed or reordered,
            another namespace); the place is ``new``'s ``metadata``.
    """
    from generator.spec.config import _merge
    from generator.spec.loader import Document

    if base.get("metadata", {}).get("namespace") != new.get("metadata", {}).get("namespace"):
        raise Cannot(f"the app is in namespace {base['metadata'].get('namespace')} in its spec; an environment "
                     "cannot move it to another", Place("<import>"))
    d = _diff(base.get("spec"), new.get("spec"))
    if d is _SAME:
        return None
    merged = _merge(base["spec"], d, ("spec",), ("spec",), Document("<import>", {}, {}, {}), {})
    if merged != new["spec"]:
        raise Cannot("the difference from the app's spec is none an environment override can make (routes "
                     "removed or in another order)", Place("<import>"),
                     hint="import it without --env to replace the app's spec (with --force)")
    return {"spec": d}
