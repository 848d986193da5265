"""Which of a VirtualService's HTTP routes a request takes, as Istio and Envoy decide it.

This is a model of Istio's matching, written once from Istio's own sources and used both by
``meshgen explain`` and by the test suite as the oracle the condition compiler is checked
against. It reads rendered ``VirtualService.spec.http`` entries (plain dicts) and never
looks at the spec.

Semantics (istio/api ``networking/v1alpha3/virtual_service.proto``; istio/istio
``pilot/pkg/networking/core/route/route.go`` ``BuildHTTPRoutesForVirtualService``,
``sourceMatchHTTP``, ``TranslateRouteMatch``, ``translateHeaderMatch``; istio/istio
``pilot/pkg/networking/util/util.go`` ``ConvertToEnvoyMatch``):

* Routes are tried in order and the first whose ``match`` accepts the request wins; a route
  without ``match`` accepts every request. ``match`` is a list of blocks, OR-ed; inside a
  block every condition must hold (AND). When routes are left but none accepts the request,
  Envoy answers 404.
* istiod builds each proxy's routes from the blocks that apply to it (``port``, gateways,
  sources below); when **no** block of the VirtualService applies, it leaves the
  VirtualService out of that proxy's config (``BuildHTTPRoutesForVirtualService`` returns
  "no routes matched"). A sidecar then routes by the Service's default route, to every
  endpoint of the Service -- every version, none of the subsets' weights; a gateway has no
  route for the host and answers 404. :func:`evaluate` reports this as ``omitted``.
* ``gateways`` and source conditions are decided when Istio builds the proxy's config:
  a block that names ``gateways`` applies only at those gateways, and then its
  ``sourceLabels`` and ``sourceNamespace`` are ignored; a block without ``gateways`` applies
  when the proxy's labels include ``sourceLabels`` and its namespace is ``sourceNamespace``.
  ``port`` must equal the port the request was sent to.
* ``uri``: ``exact`` is Envoy's ``path``, ``prefix`` its ``prefix``, ``regex`` its
  ``safe_regex`` (RE2, full match), all on the path without the query string, after Envoy's
  path normalisation (:func:`generator.routing.request.normalize_path`).
* ``method``, ``authority`` and ``scheme`` are header matchers on ``:method``, ``:authority``
  and ``:scheme``, which every request carries.
* A query parameter given twice is matched by its first value.
* A header or query matcher that is ``{}`` (or the regex ``*``) is Envoy's ``present_match``;
  otherwise the header or parameter must be carried and its value must match.
* ``withoutHeaders`` is Envoy's ``invert_match``; unless the matcher is a presence match,
  Istio also sets ``treat_missing_header_as_empty``, so a missing header is matched as ``""``
  before inverting. ``withoutHeaders: {x: {exact: ""}}`` therefore rejects a request that
  lacks ``x`` -- which the condition compiler has to account for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2

from generator.routing.conditions import compiled
from generator.routing.request import Request  # noqa: F401  (re-exported: simulate.Request)

#: HTTPMatchRequest fields this model evaluates; any other field makes it refuse to guess.
MODELLED_FIELDS = frozenset({"uri", "method", "authority", "scheme", "headers", "withoutHeaders",
                             "queryParams", "port", "sourceLabels", "sourceNamespace",
                             "gateways", "name"})


class UnmodelledMatch(ValueError):
    """The route uses a match field this model does not evaluate."""


def _is_presence(sm: dict[str, Any]) -> bool:
    """Istio's ``canBeConvertedToPresentMatch``: ``{}`` or the regex ``*``."""
    return not sm or sm.get("regex") == "*"


def _string_match(sm: dict[str, Any], value: str) -> bool:
    """Envoy ``StringMatcher`` as made by ``ConvertToEnvoyMatch`` (regex: RE2 full match)."""
    if "exact" in sm:
        return value == sm["exact"]
    if "prefix" in sm:
        return value.startswith(sm["prefix"])
    if "regex" in sm:
        return compiled(sm["regex"]).fullmatch(value) is not None
    raise UnmodelledMatch(f"string match {sm!r}")


def _header_match(sm: dict[str, Any], value: str | None) -> bool:
    if _is_presence(sm):
        return value is not None
    return value is not None and _string_match(sm, value)


def _without_header_match(sm: dict[str, Any], value: str | None) -> bool:
    if _is_presence(sm):  # present_match inverted: the header is absent
        return value is None
    # invert_match with treat_missing_header_as_empty
    return not _string_match(sm, "" if value is None else value)


def block_applies(block: dict[str, Any], request: Request) -> bool:
    """Whether istiod keeps ``block`` in the config of the proxy ``request`` goes through.

    route.go ``TranslateRoute``: a ``port`` other than the listener's drops the block;
    ``sourceMatchHTTP``: a block naming ``gateways`` applies at those gateways only (its
    ``sourceLabels``/``sourceNamespace`` ignored), one without applies where the proxy's
    labels include ``sourceLabels`` and its namespace is ``sourceNamespace``.
    """
    if block.get("port") and block["port"] != request.port:
        return False
    if block.get("gateways"):
        return request.gateway in block["gateways"]
    labels = block.get("sourceLabels") or {}
    if any(request.source_labels.get(k) != v for k, v in labels.items()):
        return False
    return not block.get("sourceNamespace") or block["sourceNamespace"] == request.source_namespace


def block_matches(block: dict[str, Any], request: Request) -> bool:
    """Whether one ``HTTPMatchRequest`` accepts ``request``.

    Raises:
        UnmodelledMatch: the block uses a field this model does not evaluate.
    """
    unknown = set(block) - MODELLED_FIELDS
    if unknown:
        raise UnmodelledMatch(f"match fields {sorted(unknown)}")
    if not block_applies(block, request):
        return False
    uri = block.get("uri")
    if uri is not None and not _is_presence(uri) and not _string_match(uri, request.uri):
        return False
    for name in ("method", "authority", "scheme"):
        sm = block.get(name)
        if sm is not None and not _header_match(sm, getattr(request, name)):
            return False
    for name, sm in (block.get("headers") or {}).items():
        if not _header_match(sm, request.headers.get(name.lower())):
            return False
    for name, sm in (block.get("withoutHeaders") or {}).items():
        if not _without_header_match(sm, request.headers.get(name.lower())):
            return False
    for name, sm in (block.get("queryParams") or {}).items():
        if not _header_match(sm, request.query.get(name)):
            return False
    return True


#: :attr:`Outcome.kind`: a route took the request.
ROUTE = "route"
#: :attr:`Outcome.kind`: routes are left for this proxy, none accepts the request: Envoy answers 404.
NO_MATCH = "no-match"
#: :attr:`Outcome.kind`: no block applies to this proxy, so istiod leaves the VirtualService
#: out: a sidecar uses the Service's default route (every version), a gateway answers 404.
OMITTED = "omitted"


@dataclass(frozen=True)
class Outcome:
    """Where Istio sends one request.

    Attributes:
        kind: :data:`ROUTE`, :data:`NO_MATCH` or :data:`OMITTED`.
        index: index in ``spec.http`` of the route taken (``None`` unless ``kind`` is ROUTE).
        route: that HTTP route (``None`` unless ``kind`` is ROUTE).
        block: the match block that accepted the request (``None`` for a route without ``match``).
    """

    kind: str
    index: int | None = None
    route: dict[str, Any] | None = None
    block: dict[str, Any] | None = None


def evaluate(http: list[dict[str, Any]], request: Request) -> Outcome:
    """Where Istio sends ``request``, given the VirtualService's ``spec.http``.

    Raises:
        UnmodelledMatch: a route uses a match field this model does not evaluate.
    """
    applies = False
    for index, route in enumerate(http):
        blocks = route.get("match")
        if not blocks:
            return Outcome(ROUTE, index, route)
        for b in blocks:
            if block_matches(b, request):
                return Outcome(ROUTE, index, route, b)
            applies = applies or block_applies(b, request)
    return Outcome(NO_MATCH if applies else OMITTED)


def rewritten_path(route: dict[str, Any], block: dict[str, Any] | None, path: str) -> str:
    """The path Envoy forwards after the route's ``rewrite`` (route.go ``applyHTTPRouteDestination``).

    ``rewrite.uri`` is Envoy's ``prefix_rewrite``: it replaces the part the block's ``uri``
    matched -- the prefix, or the whole path for an ``exact`` or ``regex`` match; ``/`` without
    ``uri``. ``rewrite.uriRegexRewrite`` is Envoy's ``regex_rewrite``, ``match`` and ``rewrite``
    passed verbatim: every match of the RE2 regex is replaced (:func:`regex_replace`).
    ``path`` is the normalised path, without the query string (Envoy keeps the query as it is).

    Raises:
        UnmodelledMatch: ``uriRegexRewrite.match`` is not an RE2 regex (Envoy would refuse it).
    """
    rewrite = route.get("rewrite") or {}
    regex = rewrite.get("uriRegexRewrite")
    if regex and regex.get("match"):
        try:
            return regex_replace(str(regex["match"]), str(regex.get("rewrite", "")), path)
        except re2.error as e:
            raise UnmodelledMatch(f"rewrite.uriRegexRewrite.match {regex['match']!r} is not RE2: {e}") from e
    uri = rewrite.get("uri")
    if not uri:
        return path
    sm = (block or {}).get("uri") or {}
    if "prefix" in sm:
        return uri + path[len(sm["prefix"]):]
    if "exact" in sm or "regex" in sm:
        return uri
    return uri + path[1:]


def rewrite_problem(pattern: str, rewrite: str) -> str | None:
    """Why RE2 cannot use ``rewrite`` as the substitution for ``pattern``, or ``None``.

    RE2 ``Rewrite``/``MaxSubmatch`` (re2/re2.cc): ``\\0``..``\\9`` name the whole match and the
    capture groups, ``\\\\`` is a backslash; any other backslash, or a group the regex does not
    have, makes ``GlobalReplace`` leave the path unchanged.
    """
    groups = compiled(pattern).groups
    i = 0
    while i < len(rewrite):
        if rewrite[i] == "\\":
            nxt = rewrite[i + 1:i + 2]
            if nxt.isdigit() and nxt.isascii():
                if int(nxt) > groups:
                    return f"\\{nxt} names group {nxt}, but the regex has {groups} capture group(s)"
            elif nxt != "\\":
                return ("a backslash must be followed by a digit (\\1 is group 1) or another backslash"
                        + (f", not {nxt!r}" if nxt else ""))
            i += 2
            continue
        i += 1
    return None


def regex_replace(pattern: str, rewrite: str, text: str) -> str:
    """``text`` after RE2 ``GlobalReplace(text, pattern, rewrite)``, as Envoy's ``regex_rewrite``
    applies it (Envoy ``CompiledGoogleReMatcher::replaceAll``): every non-overlapping match,
    left to right, is replaced by ``rewrite`` with ``\\N`` its N-th group (``\\0`` the match) and
    ``\\\\`` a backslash; an empty match right after the previous match is skipped. A
    ``rewrite`` RE2 cannot use (:func:`rewrite_problem`) leaves ``text`` unchanged.
    """
    if rewrite_problem(pattern, rewrite) is not None:
        return text
    regex = compiled(pattern)
    out: list[str] = []
    pos, last_end, count = 0, -1, 0
    while pos <= len(text):
        m = regex.search(text, pos)
        if m is None:
            break
        start, end = m.span()
        out.append(text[pos:start])
        if start == end == last_end:  # no empty match where the last one ended: skip a character
            out.append(text[start:start + 1])
            pos = start + 1
            continue
        out.append(_expand(rewrite, m))
        pos = last_end = end
        count += 1
    if count == 0:
        return text
    return "".join(out) + text[pos:]


def _expand(rewrite: str, m: Any) -> str:
    out, i = [], 0
    while i < len(rewrite):
        c = rewrite[i]
        if c == "\\":
            nxt = rewrite[i + 1]
            out.append("\\" if nxt == "\\" else (m.group(int(nxt)) or ""))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def match_http(http: list[dict[str, Any]], request: Request) -> tuple[int, dict[str, Any]] | None:
    """The first route of ``VirtualService.spec.http`` that accepts ``request``.

    Returns:
        ``(index, route)`` of the route Istio sends the request to, or ``None`` when no route
        takes it (Envoy answers 404, or istiod left the VirtualService out: see :func:`evaluate`).

    Raises:
        UnmodelledMatch: a route uses a match field this model does not evaluate.
    """
    outcome = evaluate(http, request)
    return None if outcome.kind != ROUTE else (outcome.index, outcome.route)  # type: ignore[return-value]


def destinations(route: dict[str, Any]) -> dict[str, int]:
    """Weighted destinations of an HTTP route: ``{subset (or host): weight in percent}``.

    A single destination without a weight gets 100; zero weights are left out, as Istio does.
    """
    out: dict[str, int] = {}
    entries = route.get("route") or []
    for entry in entries:
        dest = entry.get("destination") or {}
        name = dest.get("subset") or dest.get("host", "")
        weight = entry.get("weight", 100 if len(entries) == 1 else 0)
        if weight:
            out[name] = out.get(name, 0) + int(weight)
    return out
