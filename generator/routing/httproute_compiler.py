"""Compile the spec's ordered routes into Gateway API ``HTTPRoute.spec.rules``, exactly.

The spec says "first route whose condition holds wins". An HTTPRoute does not take its rules in
order (kubernetes-sigs/gateway-api ``apis/v1/httproute_types.go``, ``HTTPRouteRule``): across
rules, each match is ranked -- an ``Exact`` path first, then a ``PathPrefix`` (the longest
first), then a ``RegularExpression`` path (Istio ranks Exact > Prefix > Regex and then by the
length of the value: istio/istio ``pilot/pkg/config/kube/gateway/conversion.go``
``sortHTTPRoutes``, ``getURIRank``, ``getURILength``), then a match with a ``method``, then the
most ``headers``, then the most ``queryParams`` -- and only a tie falls back to list order.

How the first-match meaning is kept:

1. The routes go through :func:`generator.routing.compiler.compile_http` first (without header
   absence): conditions in normal form, negated predicates -- a negated header ``exact`` or
   ``regex`` too -- turned into guard routes placed before the route. The result is a
   first-match list of routes whose match blocks hold only positive matchers. A guard of a
   negated header matches the header's value with the route's other literals, so it ranks at
   least as high as the route it guards (one header match more, or as many where the route
   matches that header already) and comes first in list order (step 4 orders the rest).
2. Each block becomes one ``HTTPRouteMatch`` (a rule's matches are OR-ed, a match's fields
   AND-ed). What a match cannot hold is refused, placed at the predicate: header or query
   ``prefix`` and ``present``, an empty header or query value (``HTTPHeaderMatch.value`` and
   ``HTTPQueryParamMatch.value`` have ``minLength: 1``), a header's absence (``withoutHeaders``, which ``compile_http``
   still writes for ``not header "x" present``, a negated header ``prefix`` and the guard of a
   second matcher on one header: HTTPRoute has no header absence),
   ``authority``, ``scheme``, ``port``, ``source label``/``source namespace``,
   ``gateway``; and route bodies HTTPRoute cannot carry (``fault``; ``retries``, which only
   the experimental channel has; ``corsPolicy``, ``directResponse``, ``redirect``). ``mirror``
   and ``rewrite`` are passed on to the target, which writes them as filters.
3. Paths: ``uri exact`` is an ``Exact`` path and ``uri regex`` a ``RegularExpression`` (RE2,
   full match, as Istio's conversion passes it to Envoy). A ``PathPrefix`` matches whole
   segments -- ``/foo`` matches ``/foo`` and ``/foo/bar``, never ``/foobar`` -- so the spec's
   string prefix maps to it only where it means the same: ``uri prefix "/"``, and the pair
   ``uri exact "/foo" or uri prefix "/foo/"`` (one route, same other literals), which is
   ``PathPrefix /foo``. A ``uri prefix "/foo/"`` alone (``/foo/...`` but not ``/foo``, as
   ``not uri exact "/foo"`` leaves of an exposed path ``/foo``) is written ``PathPrefix /foo``
   too, and the requests to ``/foo`` itself (with the match's other fields) are handed to the
   routes the spec sends them to: each other rule gets the intersection of ``Exact /foo``
   with each of its matches, and an ``Exact`` path outranks every prefix. When no single
   match takes all of ``/foo`` (the spec answers 404 for some), it is refused. Any other
   ``uri prefix`` is refused, with the pair as the way out.
4. Precedence: a block ``B`` of a later rule that outranks a block ``A`` of an earlier rule
   would take the requests both match, which the spec sends to ``A``'s route. For each such
   pair that can overlap, the compiler adds the intersection ``A and B`` to ``A``'s rule: it
   ranks at least as high as ``B`` and comes first in list order, so it wins the tie. This is
   repeated until no pair is left. An intersection a match cannot hold (two different regexes
   on one field, a path regex with a prefix) is refused, naming both routes.

Every match the compiler writes names its path explicitly (no defaulting to ``PathPrefix /``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from generator.errors import Place, SpecError, SpecErrors, as_yaml
from generator.routing import compiler
from generator.routing import conditions as cond
from generator.routing import httproute
from generator.routing.compiler import SpecRoute

#: Route body fields an HTTPRoute rule carries (the target turns ``mirror`` and ``rewrite`` into
#: filters, or refuses the forms a filter cannot mean); others are refused (see the module's docstring).
CARRIED = ("route", "timeout", "headers", "mirror", "rewrite")
_BODY_HINTS = {
    "fault": "fault injection has no HTTPRoute field",
    "retries": "the standard-channel HTTPRoute (Gateway API v1.6.1, vendor/gateway-api/) has no retry field "
               "(it is experimental)",
    "corsPolicy": "the HTTPRoute CORS filter is not rendered",
    "directResponse": "HTTPRoute has no direct response; route to a version that answers",
    "redirect": "redirects are not rendered for HTTPRoute",
}
_FIELD_WORDS = {"authority": "authority", "scheme": "scheme", "port": "port", "source_label": "source label",
                "source_namespace": "source namespace", "gateway": "gateway"}


def _body_hint(route: str, key: str) -> str:
    """What to do about a route field the target cannot carry: why, then how to drop it in
    the environments on gateway-api alone (an override in the environment's file deletes a
    key with ``null``, routes merged by name), or keep the environment on istio."""
    why = _BODY_HINTS.get(key)
    drop = (f"to drop it where the target is gateway-api, write in that environment's file "
            f"spec: {{apps: {{<this app>: {{spec: {{routes: [{{name: {as_yaml(route)}, {key}: null}}]}}}}}}}}")
    return f"{why + '; ' if why else ''}{drop}, or keep spec.target: istio"


@dataclass(frozen=True)
class Match:
    """One ``HTTPRouteMatch`` as the compiler reasons about it.

    Attributes:
        path: ``(type, value)``: ``Exact``, ``PathPrefix`` or ``RegularExpression``; or
            ``("Segments", "/foo/")``: the paths under ``/foo/``, not ``/foo`` itself, written
            ``PathPrefix /foo`` (see the module docstring).
        method: the HTTP method, or ``None``.
        headers: ``((lower-case name, type, value), ...)`` sorted; type ``Exact`` or ``RegularExpression``.
        query: ``((name, type, value), ...)`` sorted.
    """

    path: tuple[str, str] = ("PathPrefix", "/")
    method: str | None = None
    headers: tuple[tuple[str, str, str], ...] = ()
    query: tuple[tuple[str, str, str], ...] = ()

    def rank(self) -> tuple[int, int, int, int, int]:
        """Istio's sort key (higher first): path type (Exact 3, PathPrefix 2, RegularExpression
        1), path length, method, header count, query count (conversion.go ``sortHTTPRoutes``)."""
        kind = {"Exact": 3, "PathPrefix": 2, "Segments": 2, "RegularExpression": 1}[self.path[0]]
        return (kind, len(self.written_path()[1]), self.method is not None, len(self.headers), len(self.query))

    def written_path(self) -> tuple[str, str]:
        """The path as the ``HTTPRouteMatch`` holds it (a ``Segments`` path is a ``PathPrefix``)."""
        if self.path[0] == "Segments":
            return ("PathPrefix", self.path[1][:-1])
        return self.path

    def exact_base(self) -> "Match":
        """For a ``Segments`` path ``/foo/``: the requests to ``/foo`` its ``PathPrefix`` also
        takes, which the compiler hands to the other rules."""
        return Match(("Exact", self.path[1][:-1]), self.method, self.headers, self.query)

    def to_object(self) -> dict[str, Any]:
        """The ``HTTPRouteMatch`` object."""
        kind, value = self.written_path()
        out: dict[str, Any] = {"path": {"type": kind, "value": value}}
        if self.method:
            out["method"] = self.method
        if self.headers:
            out["headers"] = [{"name": n, "type": t, "value": v} for n, t, v in self.headers]
        if self.query:
            out["queryParams"] = [{"name": n, "type": t, "value": v} for n, t, v in self.query]
        return out


class _Unrepresentable(Exception):
    pass


def _full(pattern: str, value: str) -> bool:
    return cond.compiled(pattern).fullmatch(value) is not None


def _and_values(a: tuple[str, str], b: tuple[str, str]) -> tuple[str, str] | None:
    """The one matcher equal to both (``None``: they never both hold)."""
    if a == b:
        return a
    first, second = sorted([a, b], key=lambda m: m[0] != "Exact")
    (ta, va), (tb, vb) = first, second
    if ta == "Exact":
        if tb == "Exact":
            return None
        return first if _full(vb, va) else None
    raise _Unrepresentable


def _and_segments(seg: tuple[str, str], other: tuple[str, str]) -> tuple[str, str] | None:
    """``Segments /p/`` (paths starting with ``/p/``) and another path."""
    base = seg[1]
    kind, value = other
    if kind == "Exact":
        return other if value.startswith(base) else None
    if kind == "Segments":
        return seg if base.startswith(value) else other if value.startswith(base) else None
    if kind == "PathPrefix":
        if httproute.prefix_matches(value, base[:-1]):
            return seg  # /p is under the prefix: so is all of /p/...
        return other if value.rstrip("/").startswith(base) else None
    raise _Unrepresentable


def _and_paths(a: tuple[str, str], b: tuple[str, str]) -> tuple[str, str] | None:
    if a == b:
        return a
    if a[0] == "Segments":
        return _and_segments(a, b)
    if b[0] == "Segments":
        return _and_segments(b, a)
    order = {"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}
    first, second = sorted([a, b], key=lambda m: order[m[0]])
    (ta, va), (tb, vb) = first, second
    if ta == "Exact":
        if tb == "Exact":
            return None
        ok = httproute.prefix_matches(vb, va) if tb == "PathPrefix" else _full(vb, va)
        return first if ok else None
    if ta == "PathPrefix" and tb == "PathPrefix":
        if httproute.prefix_matches(va, vb):
            return second
        if httproute.prefix_matches(vb, va):
            return first
        return None
    if ta == "PathPrefix" and va.rstrip("/") == "":
        return second
    raise _Unrepresentable


def _and_keyed(a: tuple, b: tuple) -> tuple | None:
    merged: dict[str, tuple[str, str]] = {n: (t, v) for n, t, v in a}
    for n, t, v in b:
        if n in merged:
            both = _and_values(merged[n], (t, v))
            if both is None:
                return None
            merged[n] = both
        else:
            merged[n] = (t, v)
    return tuple(sorted((n, t, v) for n, (t, v) in merged.items()))


def intersect(a: Match, b: Match) -> Match | None:
    """The match of requests both ``a`` and ``b`` match; ``None`` when no request does.

    Raises:
        _Unrepresentable: the intersection is not one ``HTTPRouteMatch``.
    """
    path = _and_paths(a.path, b.path)
    if path is None:
        return None
    if a.method and b.method and a.method != b.method:
        return None
    headers = _and_keyed(a.headers, b.headers)
    query = _and_keyed(a.query, b.query)
    if headers is None or query is None:
        return None
    return Match(path, a.method or b.method, headers, query)


@dataclass
class Rule:
    """One HTTPRoute rule being built: the spec route it carries, its matches and body."""

    name: str
    spec_index: int
    matches: list[Match]
    body: dict[str, Any]


def _refuse_at(route: SpecRoute, test: Callable[[cond.Pred], bool] | None, message: str,
               hint: str) -> SpecError:
    place = route.place
    if place is not None and route.when and test is not None:
        try:
            preds = sorted(cond.atoms(cond.parse(route.when, route.place)), key=lambda p: p.column)
        except SpecError:
            preds = []
        found = next((p for p in preds if test(p)), None)
        if found is not None:
            place = place.shifted(found.column)
    return SpecError(f"route {as_yaml(route.name)}: {message} (target gateway-api)", place=place, hint=hint)


def _has_pred(route: SpecRoute, test: Callable[[cond.Pred], bool]) -> bool:
    try:
        return route.when is not None and any(test(p) for p in cond.atoms(cond.parse(route.when)))
    except SpecError:
        return False


def _block_matches(block: dict[str, Any], route: SpecRoute, owner: SpecRoute | None = None) -> Match:
    """The ``HTTPRouteMatch`` of one compiled block of ``route`` (for a guard's block:
    ``owner``, the route whose negated literal the guard is made of, where a refusal of what
    that literal put in the block is placed)."""
    for key in block:
        if key not in ("uri", "method", "headers", "queryParams"):
            f = {"sourceLabels": "source_label", "sourceNamespace": "source_namespace", "gateways": "gateway",
                 "withoutHeaders": "header"}.get(key, key)
            if key == "withoutHeaders":
                raise _refuse_without_headers(route, block["withoutHeaders"])
            word = _FIELD_WORDS.get(f, f)
            raise _refuse_at(route, lambda p, f=f: p.field == f, f"{word} conditions cannot be written in an "
                             "HTTPRoute match", "HTTPRoute matches a path, method, headers and query "
                             f"parameters only; drop the {word} condition or keep spec.target: istio")
    path = ("PathPrefix", "/")
    uri = block.get("uri")
    if uri:
        (kind, value), = uri.items()
        if kind == "exact":
            path = ("Exact", value)
        elif kind == "regex":
            path = ("RegularExpression", value)
        elif value != "/":
            path = ("prefix", value)  # a string prefix: paired or refused by the caller
    method = None
    if block.get("method"):
        (kind, value), = block["method"].items()
        if kind != "exact":
            raise _refuse_at(route, lambda p: p.field == "method", f"a method {kind} match cannot be written "
                             "in an HTTPRoute match", 'write method exact "GET" (one method per route)')
        method = value

    def keyed(items: dict[str, Any], field: str, word: str) -> tuple:
        out = []
        for name, m in items.items():
            if not m:
                kind = "present"
            else:
                (kind, value), = m.items()
            if kind not in ("exact", "regex"):
                what = "presence" if kind == "present" else kind
                raise _refuse_at(route, lambda p, n=name: p.field == field and p.key == n,
                                 f"a {word} {what} match cannot be written in an HTTPRoute match",
                                 f"HTTPRoute matches {word}s exactly or by regex: write {word} "
                                 f"{cond.quote(name)} regex {cond.quote('prefix.*')}, or keep spec.target: istio")
            if value == "":  # HTTPHeaderMatch / HTTPQueryParamMatch: value has minLength 1
                def empty(p: cond.Pred, n: str = name, k: str = kind) -> bool:
                    return p.field == field and p.key == n and p.matcher.kind == k and p.matcher.value == ""
                at = next((r for r in (route, owner) if r is not None and _has_pred(r, empty)), route)
                raise _refuse_at(at, empty, f"a {word} {kind} match on the empty value cannot be written in an "
                                 f"HTTPRoute match (its value must not be empty, in the Gateway API CRD)",
                                 f'match the empty value by a regex: {word} {cond.quote(name)} regex "()", '
                                 "or keep spec.target: istio")
            out.append((name, "Exact" if kind == "exact" else "RegularExpression", value))
        return tuple(sorted(out))

    return Match(path, method, keyed(block.get("headers") or {}, "header", "header"),
                 keyed(block.get("queryParams") or {}, "query", "query parameter"))


def _refuse_without_headers(route: SpecRoute, without: Mapping[str, Any]) -> SpecError:
    """The refusal of a match that needs a header's absence (``withoutHeaders``), which
    :func:`compiler.compile_http` writes, without header absence, only for a negated header
    ``present`` or ``prefix`` (a negated ``exact`` or ``regex`` is guarded) and for the guard of
    a second matcher on one header."""
    negated = _negated_header(route, set(without))
    if negated is None:  # two matchers on one header: the guard that checks the second needs absence
        names = ", ".join(cond.quote(n) for n in sorted(without))
        return _refuse_at(route, lambda p: p.field == "header", f"two matchers on header {names} cannot be "
                          "written in an HTTPRoute match: one match holds one matcher per header, and the "
                          "guard that checks the second needs the header's absence, which HTTPRoute cannot match",
                          "write one regex that holds both, or keep spec.target: istio")
    text = cond.pred_text(negated)
    at = (lambda p: p.field == "header" and p.key == negated.key and p.matcher == negated.matcher)
    if negated.matcher.kind == "present":
        return _refuse_at(route, at, f"`not {text}` (header absence) cannot be written in an HTTPRoute match: "
                          "HTTPRoute matches header values, never a header's absence",
                          f"match the values you want positively (header {cond.quote(negated.key)} exact or "
                          "regex), or keep spec.target: istio")
    return _refuse_at(route, at, f"`not {text}`: a negated header prefix match cannot be written in an "
                      "HTTPRoute match (its guard rule would need a header prefix match)",
                      f"write not header {cond.quote(negated.key)} regex "
                      f"{cond.quote(_re_escape(negated.matcher.value) + '.*')}: a negated header exact or regex "
                      "match is carried through guard rules")


def _negated_header(route: SpecRoute, names: set[str]) -> cond.Pred | None:
    """The first negated header ``present`` or ``prefix`` predicate of the route's ``when`` on
    one of ``names`` (the ones :func:`compiler.compile_http` leaves to ``withoutHeaders``)."""
    found: list[cond.Pred] = []

    def walk(expr: cond.Expr, negated: bool) -> None:
        if isinstance(expr, cond.Pred):
            if negated and expr.field == "header" and expr.key in names and expr.matcher.kind in ("present", "prefix"):
                found.append(expr)
        elif isinstance(expr, cond.Not):
            walk(expr.item, not negated)
        elif isinstance(expr, (cond.And, cond.Or)):
            for e in expr.items:
                walk(e, negated)

    try:
        if route.when is not None:
            walk(cond.parse(route.when), False)
    except SpecError:
        return None
    return min(found, key=lambda p: p.column) if found else None


def _pair_prefixes(matches: list[Match], route: SpecRoute) -> list[Match]:
    """Fold ``Exact /foo`` + string prefix ``/foo/`` (same other fields) into ``PathPrefix /foo``;
    refuse any other string prefix."""
    out = [m for m in matches if m.path[0] != "prefix"]
    for m in matches:
        if m.path[0] != "prefix":
            continue
        value = m.path[1]
        base = value[:-1]
        exact = Match(("Exact", base), m.method, m.headers, m.query)
        if value.endswith("/") and base and exact in out:
            out[out.index(exact)] = Match(("PathPrefix", base), m.method, m.headers, m.query)
            continue
        if value.endswith("/") and base:  # /foo/... but not /foo: the other rules get /foo
            out.append(Match(("Segments", value), m.method, m.headers, m.query))
            continue
        seg = value.rstrip("/") or "/"
        raise _refuse_at(route, lambda p, v=value: p.field == "uri" and p.matcher.kind == "prefix"
                         and p.matcher.value == v,
                         f"uri prefix {cond.quote(value)} is not a whole path segment: HTTPRoute's PathPrefix "
                         f"{seg} matches {seg} and {seg.rstrip('/')}/..., "
                         + ("not a longer segment" if not value.endswith("/") else f"and {seg} itself"),
                         f'for whole segments write (uri exact {cond.quote(seg)} or uri prefix '
                         f'{cond.quote(seg.rstrip("/") + "/")}); for a string prefix write uri regex '
                         f'{cond.quote(_re_escape(value) + ".*")}')
    return list(dict.fromkeys(out))


def _re_escape(text: str) -> str:
    return "".join("\\" + c if c in r"\.+*?()|[]{}^$" else c for c in text)


def _body(route: SpecRoute, place: Callable[[str], Place | None]) -> dict[str, Any]:
    for key in route.body:
        if key not in CARRIED and key not in ("mirrorPercentage",):
            raise SpecError(f"route {as_yaml(route.name)}: {key} cannot be written in an HTTPRoute "
                            "(target gateway-api)", place=place(key) or route.place, hint=_body_hint(route.name, key))
    return route.body  # read only: the target builds new objects from it


def compile_rules(routes: Sequence[SpecRoute], *, scope: str | None = None,
                  max_matches: int = compiler.MAX_ROUTES,
                  body_places: Mapping[tuple[int, str], Place] | None = None) -> list[Rule]:
    """HTTPRoute rules whose precedence-ordered meaning is the spec's first-match meaning.

    Args:
        routes: the spec's routes in order (as for :func:`compiler.compile_http`); ``body``
            holds ``route`` (``[{"destination": {"subset": version, ...}, "weight": w}]``),
            ``timeout``, ``headers``, ``mirror`` (+ ``mirrorPercentage``), ``rewrite`` -- turned into
            backendRefs and filters by the target.
        scope: a condition ANDed onto every route (an exposed app's ``uri prefix`` paths).
        max_matches: bound on the matches of all rules.
        body_places: ``{(route index, body key): place}`` where a refused body field is placed
            (``mirror`` for ``mirror``...); the route's ``when`` otherwise.

    Returns:
        The rules in list order; a rule's ``matches`` never empty (a catch-all is
        ``PathPrefix /``). A request no rule matches is not routed (404), as in the spec.

    Raises:
        SpecErrors: every refusal, placed at the predicate (see the module docstring).
    """
    errors: list[SpecError] = []
    bodies: dict[int, dict[str, Any]] = {}
    for i, r in enumerate(routes):
        try:
            bodies[i] = _body(r, lambda key, i=i: (body_places or {}).get((i, key)))
        except SpecError as e:
            errors.append(e)
            bodies[i] = {}
    try:
        http = compiler.compile_http(routes, scope=scope, max_routes=max_matches, header_absence=False)
    except SpecErrors as e:
        SpecErrors.collect(errors + list(e.errors))
        raise
    names = [r.name for r in routes]
    by_name = {r.name: i for i, r in enumerate(routes)}
    rules: list[Rule] = []
    for entry in http:
        if entry["name"] == compiler.NO_ROUTE:
            continue  # HTTPRoute answers 404 by itself where no rule matches
        spec_name = compiler.spec_route_name(entry["name"], names)
        index = by_name[spec_name]
        route = _placed(routes[index], entry["name"], by_name, routes)
        try:
            owner = routes[by_name.get(entry["name"].split("-guard-", 1)[0], index)]
            matches = [_block_matches(b, route, owner) for b in entry.get("match") or [{}]]
            matches = _pair_prefixes(matches, route)
        except SpecError as e:
            errors.append(e)
            continue
        rules.append(Rule(entry["name"], index, matches, bodies[index]))
    SpecErrors.collect(list({e.format(): e for e in errors}.values()))
    while _keep_first_match(rules, routes, max_matches) | _hand_over_exact(rules, routes, max_matches):
        pass
    return rules


def placed_route(rule: Rule, routes: Sequence[SpecRoute]) -> SpecRoute:
    """The spec route a refusal of ``rule`` is placed at: the route it carries or, for a guard
    rule carrying a route without ``when``, the route the guard is made for (see :func:`_placed`).

    Args:
        rule: one of :func:`compile_rules`' rules.
        routes: the spec's routes, as given to :func:`compile_rules`.
    """
    return _placed(routes[rule.spec_index], rule.name, {r.name: k for k, r in enumerate(routes)}, routes)


def _placed(route: SpecRoute, entry_name: str, by_name: Mapping[str, int], routes: Sequence[SpecRoute]) -> SpecRoute:
    """The route a refusal of entry ``entry_name`` is placed at: the route it carries, or --
    for a guard carrying a route without ``when`` (nowhere to point) -- the route whose
    negated literal the guard is made of (``beta-guard-1-default``: ``beta``)."""
    if route.place is not None or entry_name == route.name:
        return route
    owner = entry_name.split("-guard-", 1)[0]
    return routes[by_name[owner]] if owner in by_name else route


def _hand_over_exact(rules: list[Rule], routes: Sequence[SpecRoute], limit: int) -> bool:
    """For each ``Segments /p/`` match (written ``PathPrefix /p``, which also takes ``/p``): give
    every other rule the intersection of ``Exact /p`` (with the match's other fields) and each
    of its matches, so that an ``Exact`` match, which outranks every prefix, takes each such
    request where the spec sends it (:func:`_keep_first_match` then orders them). Whether
    anything was added.

    Raises:
        SpecErrors: some of ``/p`` would go nowhere in the spec (404), which a ``PathPrefix``
            cannot leave out; or an intersection is not one match.
    """
    by_name = {r.name: k for k, r in enumerate(routes)}
    added = False
    for i, rule in enumerate(rules):
        for s in [m for m in rule.matches if m.path[0] == "Segments"]:
            exact = s.exact_base()
            covered = False
            for j, other in enumerate(rules):
                for m in list(other.matches):
                    try:
                        both = intersect(exact, m)
                    except _Unrepresentable:
                        both = None  # an Exact path with two regexes on a header: left to the cover check
                    if both is None:
                        continue
                    covered = covered or both == exact
                    if any(_covers(k, both) for k in other.matches):
                        continue
                    other.matches.append(both)
                    added = True
            if not covered:
                route = _placed(routes[rule.spec_index], rule.name, by_name, routes)
                base = s.path[1][:-1]
                raise SpecErrors([SpecError(
                    f"route {as_yaml(route.name)}: uri prefix {cond.quote(s.path[1])} without {base} itself "
                    f"cannot be written in an HTTPRoute: its PathPrefix {base} also takes {base}, and no later "
                    f"route takes every request to {base} (target gateway-api)", place=route.place,
                    hint=f"add a last route without `when`, or write uri regex {cond.quote(_re_escape(s.path[1]) + '.*')}")])
            if sum(len(r.matches) for r in rules) > limit:
                raise SpecErrors([SpecError(
                    f"route {as_yaml(routes[rule.spec_index].name)}: the HTTPRoute needs more than "
                    f"{limit} matches to keep the spec's order (target gateway-api)",
                    place=_placed(routes[rule.spec_index], rule.name, by_name, routes).place,
                    hint="order routes from the most specific path to the least")])
    return added


def _keep_first_match(rules: list[Rule], routes: Sequence[SpecRoute], limit: int) -> bool:
    """Add to each rule the intersections that keep its requests from later, higher-ranked
    rules; whether anything was added."""
    changed = True
    added = False
    while changed:
        changed = False
        for i, rule in enumerate(rules):
            for a in list(rule.matches):
                for later in rules[i + 1:]:
                    if later.body == rule.body and later.spec_index == rule.spec_index:
                        continue
                    for b in later.matches:
                        if b.rank() <= a.rank():
                            continue
                        try:
                            both = intersect(a, b)
                            if both is not None and both.rank() < b.rank():
                                raise _Unrepresentable  # a regex path ranks below any prefix
                        except _Unrepresentable:
                            by_name = {r.name: k for k, r in enumerate(routes)}
                            first = _placed(routes[rule.spec_index], rule.name, by_name, routes)
                            second = _placed(routes[later.spec_index], later.name, by_name, routes)
                            hint = "make the two conditions exclude each other"
                            if rule.name == first.name and later.name == second.name:
                                hint += (f", or move {as_yaml(second.name)} before {as_yaml(first.name)} "
                                         "if it should win")
                            raise SpecErrors([SpecError(
                                f"{_rule_words(later, routes)} outranks {_rule_words(rule, routes)} (which "
                                "comes first) in an HTTPRoute (an Exact path, then the longest prefix, then method, "
                                "headers, query) and the requests both match cannot be given back to the "
                                "earlier rule: two regexes, or a regex and a prefix, on one field, "
                                "or a regex path (which ranks below every prefix) (target gateway-api)",
                                place=first.place or second.place, hint=hint)]) from None
                        if both is None or any(_covers(m, both) for m in rule.matches):
                            continue
                        rule.matches.append(both)
                        changed = added = True
                        if sum(len(r.matches) for r in rules) > limit:
                            raise SpecErrors([SpecError(
                                f"route {as_yaml(routes[rule.spec_index].name)}: the HTTPRoute needs more than "
                                f"{limit} matches to keep the spec's order (target gateway-api)",
                                place=routes[rule.spec_index].place,
                                hint="order routes from the most specific path to the least")])
    return added


def _rule_words(rule: Rule, routes: Sequence[SpecRoute]) -> str:
    """``route 'beta'``, or for a guard rule (``beta-guard-1-default``) ``the guard rule of route
    'beta' that sends on to 'default'``."""
    carried = routes[rule.spec_index].name
    if rule.name == carried:
        return f"route {as_yaml(carried)}"
    return f"the guard rule of route {as_yaml(rule.name.split('-guard-', 1)[0])} that sends on to {as_yaml(carried)}"


def _covers(m: Match, other: Match) -> bool:
    """``m`` already wins every request of ``other`` in its rule (same match, or a higher-ranked
    one that contains it)."""
    if m == other:
        return True
    try:
        return intersect(m, other) == other and m.rank() >= other.rank()
    except _Unrepresentable:
        return False
