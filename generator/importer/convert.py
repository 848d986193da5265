"""Istio objects -> App specs, pure: group what belongs together, convert it, or say why not.

Grouping (one app per Service host and namespace):

- a ``DestinationRule`` for host H in namespace N, and a ``VirtualService`` of N whose one
  host is H and whose every destination is H, make the app of H (named after H's first label;
  ``-<namespace>`` is added when two namespaces have a Service of one name);
- a ``VirtualService`` bound to ``Gateway`` objects is converted with those Gateways when the
  spec format can express them (see :func:`convert`).

Conversion follows what the renderer writes back (``generator/render/render.py`` and the
route compiler, ``generator/routing/compiler.py``): an Istio ``HTTPRoute``'s match blocks become
one ``when`` condition (blocks OR-ed, fields AND-ed, istio/api ``virtual_service.proto``
``HTTPMatchRequest``), its destinations a ``to`` of versions (the DestinationRule's subsets),
and its other fields (``timeout``, ``retries``, ``fault``, ``rewrite``, ``redirect``,
``directResponse``, ``headers``, ``corsPolicy``, ``mirror``) pass through under Istio's names.
Each converted route list is compiled by :func:`generator.routing.compiler.compile_http`, so
a condition the compiler would refuse is refused here, with its reason.

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
from generator.routing import conditions as cond
from generator.routing.compiler import SpecRoute, compile_http
from generator.spec import schema
from generator.spec.config import ATOMIC_KEYS

API_VERSION = "meshgen.io/v1alpha1"
#: The first line of every spec meshgen writes, as in the bundled specs.
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/app.schema.json"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
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


def fqdn(host: str, namespace: str) -> str:
    """Istio's resolution of a short host (``reviews``) in ``namespace``; a host with a dot,
    or a wildcard, is kept (istio/istio ``pilot/pkg/model`` ``ResolveShortnameToFQDN``)."""
    if "." in host or host.startswith("*"):
        return host
    return f"{host}.{namespace}.svc.cluster.local"


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


def block_condition(block: dict[str, Any], place: Any) -> str:
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
            gws = [f"gateway {cond.quote(str(g))}" for g in value or []]
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


def _condition(matches: list[dict[str, Any]], place: Any) -> str | None:
    if not matches:
        return None
    terms = [block_condition(b, lambda *k, i=i: place(i, *k)) if isinstance(b, dict) else "" for i, b in enumerate(matches)]
    if any(t == "" for t in terms):
        return None  # an empty block matches everything
    if len(terms) == 1:
        return terms[0]
    return " or ".join(f"({t})" if " and " in t or " or " in t else t for t in terms)


# --------------------------------------------------------------------------- routes


@dataclass
class _Service:
    host: str  # FQDN
    port: int | None
    versions: set[str]


def _destination(dest: Any, obj: IstioObject, at: tuple[Any, ...], svc: _Service) -> str:
    """The version a destination names; the host and port must be the app's."""
    if not isinstance(dest, dict) or "host" not in dest:
        raise Cannot("a destination without host", obj.place(*at))
    host = fqdn(str(dest["host"]), obj.namespace)
    if host != svc.host:
        raise Cannot(f"destination host {dest['host']} is not the app's Service {svc.host}: an app's routes "
                     "go to its own versions", obj.place(*at, "host"))
    port = (dest.get("port") or {}).get("number") if isinstance(dest.get("port"), dict) else dest.get("port")
    if port != svc.port:
        raise Cannot(f"destination port {port if port else '(none)'} differs from the app's "
                     f"{svc.port if svc.port else '(none)'}: a spec sends every route to one Service port",
                     obj.place(*at, "port"))
    subset = dest.get("subset")
    if not subset:
        raise Cannot("a destination without subset: a spec's `to` names versions (DestinationRule subsets)",
                     obj.place(*at), hint="name the subset, or route to it through a version")
    if subset not in svc.versions:
        raise Cannot(f"subset {subset!r} is defined by no DestinationRule of {svc.host} in this import",
                     obj.place(*at, "subset"), hint="import the DestinationRule with it")
    return str(subset)


def _route(http: dict[str, Any], i: int, obj: IstioObject, svc: _Service, names: set[str]) -> dict[str, Any]:
    """One Istio HTTPRoute as a spec route."""
    at = ("http", i)
    name = http.get("name")
    if not (isinstance(name, str) and _LABEL.match(name) and len(name) <= 63) or name in names:
        name = f"route-{i + 1}"
        while name in names:
            name += "-x"
    names.add(name)
    route: dict[str, Any] = {"name": name}
    when = _condition(http.get("match") or [], lambda *k: obj.place(*at, "match", *k))
    if when is not None:
        route["when"] = when
    for key in http:
        if key in ("name", "match", "route", "mirror", "mirrorPercentage", *_VERBATIM):
            continue
        raise Cannot(f"HTTPRoute field {key!r} has no counterpart in a spec route", obj.key_place(*at, key))
    if "route" in http:
        dests = http["route"] or []
        to: dict[str, int] = {}
        for j, d in enumerate(dests):
            version = _destination((d or {}).get("destination"), obj, (*at, "route", j, "destination"), svc)
            weight = d.get("weight")
            if weight is None and len(dests) == 1:
                weight = 100
            if not isinstance(weight, int) or isinstance(weight, bool):
                raise Cannot("a weight is missing: a spec's `to` gives each version an integer weight",
                             obj.place(*at, "route", j))
            if version in to:
                raise Cannot(f"version {version!r} appears twice in one route", obj.place(*at, "route", j))
            to[version] = weight
        if sum(to.values()) != 100:
            raise Cannot(f"weights sum to {sum(to.values())}, not 100: Istio would normalise them, a spec "
                         "states them exactly", obj.place(*at, "route"), hint="make them sum to 100")
        route["to"] = next(iter(to)) if len(to) == 1 else to
    for key in _VERBATIM:
        if key in http:
            route[key] = copy.deepcopy(http[key])
    if "mirror" in http:
        route["mirror"] = {"version": _destination(http["mirror"], obj, (*at, "mirror"), svc)}
        pct = http.get("mirrorPercentage")
        if pct is not None:
            value = (pct or {}).get("value") if isinstance(pct, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise Cannot("mirrorPercentage without a value", obj.place(*at, "mirrorPercentage"))
            route["mirror"]["percent"] = value
    elif "mirrorPercentage" in http:
        raise Cannot("mirrorPercentage without mirror", obj.key_place(*at, "mirrorPercentage"))
    return route


# --------------------------------------------------------------------------- grouping


@dataclass
class _App:
    namespace: str
    host: str  # FQDN
    dr: IstioObject | None = None
    vs: IstioObject | None = None
    name: str = ""


def _key_error(obj: IstioObject, message: str, place: Place | None = None, hint: str | None = None) -> SpecError:
    return SpecError(message, place=place or obj.doc.place(*obj.at, "metadata", "name"), hint=hint)


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

    def fail(obj: IstioObject, error: SpecError) -> None:
        outcomes[id(obj)].error = error

    for obj in objects:
        if obj.kind == "DestinationRule":
            host = obj.spec.get("host")
            if not isinstance(host, str) or not host:
                fail(obj, _key_error(obj, "DestinationRule without spec.host", obj.place()))
                continue
            app = apps.setdefault((obj.namespace, fqdn(host, obj.namespace)), _App(obj.namespace, fqdn(host, obj.namespace)))
            if app.dr is not None:
                fail(obj, _key_error(obj, f"a second DestinationRule for host {host} in namespace {obj.namespace} "
                                          f"(the first: {app.dr.doc.path}); Istio would use only the oldest",
                                     obj.place("host"), hint="import one of them"))
                continue
            app.dr = obj
    for obj in objects:
        if obj.kind == "VirtualService":
            hosts = obj.spec.get("hosts") or []
            gateways = obj.spec.get("gateways") or []
            if obj.spec.get("exportTo") is not None:
                fail(obj, SpecError("exportTo has no counterpart in a spec: every rendered object is visible "
                                    "to the whole mesh", place=obj.key_place("exportTo")))
                continue
            if [g for g in gateways if g != "mesh"]:
                fail(obj, SpecError("a VirtualService bound to a Gateway other than an app's own exposed "
                                    "gateway cannot be expressed", place=obj.place("gateways"),
                                    hint="expose the app (spec.expose) instead"))
                continue
            if len(hosts) != 1 or not isinstance(hosts[0], str):
                fail(obj, SpecError("an app's VirtualService has exactly one host, its Service",
                                    place=obj.place("hosts")))
                continue
            if obj.spec.get("tcp") or obj.spec.get("tls"):
                kind = "tcp" if obj.spec.get("tcp") else "tls"
                fail(obj, SpecError(f"{kind} routes have no counterpart in a spec (HTTP routes only)",
                                    place=obj.key_place(kind)))
                continue
            host = fqdn(hosts[0], obj.namespace)
            app = apps.setdefault((obj.namespace, host), _App(obj.namespace, host))
            if app.vs is not None:
                fail(obj, SpecError(f"a second VirtualService for host {hosts[0]} (the first: {app.vs.ref} in "
                                    f"{app.vs.doc.path}); Istio merges them in no defined order",
                                    place=obj.place("hosts", 0), hint="import one of them"))
                continue
            app.vs = obj
    for obj in objects:
        if obj.kind in ("Gateway", "ServiceEntry"):
            fail(obj, SpecError(f"a {obj.kind} has no counterpart in a spec: meshgen renders the Gateway of "
                                "an exposed app (spec.expose) from the environment's ingress",
                                place=obj.doc.place(*obj.at, "kind")))

    existing = existing or {}
    known = {identity: name for name, identity in existing.items()}
    used = set(existing)
    for (ns, host), app in sorted(apps.items()):
        base = re.sub(r"[^a-z0-9-]", "-", host.split(".")[0].lstrip("*").lower()).strip("-")[:63] or "app"
        if (ns, host) in known:
            name = known[(ns, host)]
        else:
            name = base if base not in used else f"{base}-{ns}"[:63]
        used.add(name)
        app.name = name
        members = [o for o in (app.dr, app.vs) if o is not None and outcomes[id(o)].error is None]
        if not members:
            continue
        try:
            doc = _app_spec(app)
        except Cannot as e:
            culprit = next(o for o in members if o.doc.path == e.place.path) if any(
                o.doc.path == e.place.path for o in members) else members[0]
            fail(culprit, SpecError(e.message, place=e.place, hint=e.hint))
            for o in members:
                if o is not culprit:
                    fail(o, SpecError(f"not imported: {culprit.ref} of the same app cannot be", place=_meta(o)))
            continue
        except SpecErrors as e:
            for o in members:
                fail(o, SpecError(f"{e.errors[0].message}", place=_meta(o), hint=e.errors[0].hint))
            continue
        result.apps[name] = doc
        for o in members:
            outcomes[id(o)].app = name
    return result


def _meta(obj: IstioObject) -> Place:
    return obj.doc.place(*obj.at, "metadata", "name")


def _app_spec(app: _App) -> dict[str, Any]:
    """The App document of one grouped app; raises :class:`Cannot` or :class:`SpecErrors`."""
    if app.dr is None:
        raise Cannot(f"a VirtualService for {app.host} without its DestinationRule: the spec's versions are "
                     "the DestinationRule's subsets", _meta(app.vs), hint="import the DestinationRule with it")
    if app.vs is None:
        raise Cannot(f"a DestinationRule for {app.host} without a VirtualService: a spec always renders its "
                     "routes", _meta(app.dr), hint="import the VirtualService of the host with it")
    dr, vs = app.dr, app.vs
    for key in dr.spec:
        if key not in ("host", "trafficPolicy", "subsets"):
            raise Cannot(f"DestinationRule field {key!r} has no counterpart in a spec", dr.key_place(key))
    versions: dict[str, Any] = {}
    for i, subset in enumerate(dr.spec.get("subsets") or []):
        if not isinstance(subset, dict):
            raise Cannot("a subset is a mapping", dr.place("subsets", i))
        name = subset.get("name")
        if not isinstance(name, str) or not _LABEL.match(name):
            raise Cannot(f"subset name {name!r} is not a DNS-1123 label, which a version name must be",
                         dr.place("subsets", i, "name"))
        if not subset.get("labels"):
            raise Cannot(f"subset {name!r} without labels: a version selects its pods by labels",
                         dr.place("subsets", i))
        for key in subset:
            if key not in ("name", "labels", "trafficPolicy"):
                raise Cannot(f"subset field {key!r} has no counterpart in a spec version", dr.key_place("subsets", i, key))
        versions[name] = {"labels": dict(subset["labels"])}
        if subset.get("trafficPolicy") is not None:
            versions[name]["trafficPolicy"] = copy.deepcopy(subset["trafficPolicy"])
    if not versions:
        raise Cannot("a DestinationRule without subsets: a spec names at least one version", dr.place())
    ports = set()
    for r in vs.spec.get("http") or []:
        for d in (r or {}).get("route") or []:
            p = ((d or {}).get("destination") or {}).get("port")
            ports.add(p.get("number") if isinstance(p, dict) else p)
    svc = _Service(app.host, next(iter(ports)) if len(ports) == 1 else None, set(versions))
    for key in vs.spec:
        if key not in ("hosts", "gateways", "http"):
            raise Cannot(f"VirtualService field {key!r} has no counterpart in a spec", vs.key_place(key))
    names: set[str] = set()
    http = vs.spec.get("http") or []
    if not http:
        raise Cannot("a VirtualService without http routes", vs.place())
    routes = [_route(r, i, vs, svc, names) for i, r in enumerate(http)]
    for i, r in enumerate(routes[:-1]):
        if "when" not in r:
            raise Cannot("a route that takes every request before the last: the routes after it are never "
                         "reached, and a spec puts its catch-all last", vs.place("http", i),
                         hint="remove the routes after it")
    # what the renderer will compile: refuse here what it would refuse
    compile_http([SpecRoute(r["name"], r.get("when"), {}) for r in routes])
    host_value = _short(app.host, app.namespace)
    service: dict[str, Any] = {"host": host_value}
    if svc.port:
        service["port"] = svc.port
    spec: dict[str, Any] = {"service": service, "versions": versions}
    if dr.spec.get("trafficPolicy") is not None:
        spec["trafficPolicy"] = copy.deepcopy(dr.spec["trafficPolicy"])
    spec["routes"] = routes
    doc = {"apiVersion": API_VERSION, "kind": "App",
           "metadata": {"name": app.name, "namespace": app.namespace}, "spec": spec}
    errors = schema.validate(doc, "app.schema.json", lambda *k: _meta(vs), lambda *k: _meta(vs))
    if errors:
        raise SpecErrors(errors)
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
