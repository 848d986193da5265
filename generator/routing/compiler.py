"""Compile the spec's ordered routes into Istio ``VirtualService.spec.http`` routes, exactly.

The spec says "first route whose condition holds wins", with any boolean condition
(:mod:`generator.routing.conditions`). Istio can say less (istio/api
``networking/v1alpha3/virtual_service.proto``, ``HTTPMatchRequest``): a route's ``match`` is an
OR of blocks, a block is an AND of one matcher per field, routes are tried in order, and the
only negation is ``withoutHeaders``. This module turns the first into the second so that,
for every request, Istio picks a route carrying the same spec route's destination as the
spec would -- or it refuses with an error naming the sub-expression it cannot express. It
never emits an approximation.

How (docs/conditions.md has the long form):

1. Each condition is put in disjunctive normal form: an OR of *terms*, each a set of
   literals (a predicate or its negation). Each term becomes one match block.
2. Literals on one field are merged where the result is exact (``exact`` decides the others;
   two prefixes keep the longer or contradict; a regex whose literal start implies a prefix
   absorbs it; several negated header matchers become one ``withoutHeaders`` regex
   alternation). Contradictory terms are dropped.
3. Negated header predicates become ``withoutHeaders`` (with ``header_absence=False``, for a
   target without it, a negated header ``exact`` or ``regex`` is guarded as in 4). Istio sets
   ``treat_missing_header_as_empty`` on those (route.go ``TranslateRouteMatch``), so when the
   negated matcher accepts ``""`` a missing header would be rejected where the spec accepts
   it; the compiler adds a second block ``withoutHeaders: {name: {}}`` (header absent).
4. What a block cannot hold -- a negated non-header predicate (``not uri prefix "/a"``), a
   second positive matcher on a header -- is removed from the term and replaced by a
   *guard*: a set of routes placed before the route, matching the requests the weakened term
   would wrongly take (the term's other literals plus the removed literal's opposite), and
   sending them where the rest of the spec list sends them (the remaining routes compiled
   again in that narrower context). Guards nest when needed.
   A guard is exact only if every request it matches is matched by one of its routes, so
   guards need a later route that catches everything (a route without ``when``); without
   one the compiler refuses.
5. Refused: two positive matchers on one non-header field that do not merge (e.g. two
   ``uri`` regexes: a block holds one ``uri``, RE2 has no intersection); ``gateway`` with a
   source predicate in one block (Istio ignores ``sourceLabels``/``sourceNamespace`` in a
   block that names ``gateways``, route.go ``sourceMatchHTTP``); output over the bound.

Size: a term ``P and not N1 ... and not Nk`` with k negated non-header predicates, before a
catch-all, needs k guards: at most k + 2 Istio routes. In the worst case growth is
exponential in k: each guard repeats the rest of the list with one more predicate fixed, and a
condition whose normal form has many terms needs guards for each (an exclusive-or chain of k
negated predicates: 2, 4, 8, 37, 129, 521 Envoy routes for k = 1..6, ``bench/conditions.py``).
:data:`MAX_ROUTES` bounds the output: it counts Envoy routes, one per match block (Istio makes
one Envoy route per block, route.go ``BuildHTTPRoutesForVirtualService``).

Names: an Istio route carrying spec route ``beta`` is named ``beta``; a route inside the n-th
guard of route ``beta`` carrying spec route ``default`` is named ``beta-guard-n-default``.
:func:`spec_route_name` maps any name back to the spec route whose destination it carries.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import re2

from generator.errors import Place, SpecError, SpecErrors, as_yaml
from generator.routing import conditions as cond
from generator.routing.conditions import Expr, Matcher, Pred, compiled

#: Default bound on the output: Envoy routes (one per match block) of one VirtualService.
MAX_ROUTES = 128
#: Name of the explicit last route that answers 404 where no spec route matches (see
#: :func:`compile_http`); a spec route may not take it.
NO_ROUTE = "no-route"
#: Its body: Envoy's own answer when no route matches, made explicit.
NO_ROUTE_BODY: dict[str, Any] = {"directResponse": {"status": 404}}

Lit = tuple[Pred, bool]  # a predicate and its polarity (False: negated)
Term = frozenset[Lit]  # a conjunction of literals

_SOURCE_FIELDS = ("source_label", "source_namespace")
_BLOCK_ORDER = ("uri", "scheme", "method", "authority", "headers", "withoutHeaders",
                "queryParams", "port", "sourceLabels", "sourceNamespace", "gateways")
_GUARD_NAME = re.compile(r"-guard-\d+-")


@dataclass(frozen=True)
class SpecRoute:
    """One route of the spec, as the renderer hands it to :func:`compile_http`.

    Attributes:
        name: spec route name (DNS-1123 label).
        when: the condition text; ``None`` for the catch-all (at most one, the last).
        body: Istio ``HTTPRoute`` fields other than ``name`` and ``match`` (``route``,
            ``timeout``, ``retries``, ``fault``, ``mirror``, ``mirrorPercentage``...).
        place: where the first character of ``when`` is, for errors.
    """

    name: str
    when: str | None
    body: dict[str, Any]
    place: Place | None = None


def spec_route_name(istio_name: str, spec_names: Iterable[str] | None = None) -> str | None:
    """The spec route whose destination the Istio route named ``istio_name`` carries.

    Args:
        istio_name: ``name`` of a route made by :func:`compile_http`.
        spec_names: the spec's route names; when given, only one of them is returned.

    Returns:
        The spec route name (``beta-guard-2-default`` -> ``default``); ``None`` for
        :data:`NO_ROUTE`, and when ``spec_names`` is given and none fits.
    """
    names = None if spec_names is None else set(spec_names)
    if names is not None and istio_name in names:
        return istio_name
    if istio_name == NO_ROUTE:
        return None
    cuts = [m.end() for m in _GUARD_NAME.finditer(istio_name)]
    if names is None:
        return istio_name[cuts[-1]:] if cuts else istio_name
    return next((istio_name[c:] for c in cuts if istio_name[c:] in names), None)


# --------------------------------------------------------------------------- normal form


class _Refusal(Exception):
    """A term that cannot be expressed; ``pred`` is the predicate to point at, if any."""

    def __init__(self, message: str, pred: Pred | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.pred, self.hint = message, pred, hint
        self.index: int | None = None  # the spec route whose condition it is in


class _TooBig(Exception):
    pass


def _lit_text(lit: Lit) -> str:
    pred, positive = lit
    return cond.pred_text(pred) if positive else f"not {cond.pred_text(pred)}"


def _lit_key(lit: Lit) -> tuple:
    p, positive = lit
    return (p.field, p.key, p.matcher.kind, p.matcher.value, positive)


def _dnf(expr: Expr, limit: int) -> list[Term]:
    """``expr`` as an OR of terms (sets of literals), contradictions and absorbed terms removed.

    Raises:
        _TooBig: more than ``limit`` terms.
    """

    def walk(e: Expr, positive: bool) -> list[Term]:
        if isinstance(e, cond.Const):
            return [frozenset()] if e.value == positive else []
        if isinstance(e, Pred):
            return [frozenset({(e, positive)})]
        if isinstance(e, cond.Not):
            return walk(e.item, not positive)
        conj = isinstance(e, cond.And) == positive
        parts = [walk(item, positive) for item in e.items]
        if not conj:
            return _absorb([t for part in parts for t in part], limit)
        terms: list[Term] = [frozenset()]
        for part in parts:
            merged = []
            for a, b in itertools.product(terms, part):
                t = a | b
                if not any((p, not s) in t for p, s in t):
                    merged.append(t)
            terms = _absorb(merged, limit)
        return terms

    return walk(expr, True)


def _absorb(terms: list[Term], limit: int) -> list[Term]:
    """Drop duplicate terms and terms that contain another (``a or (a and b)`` is ``a``)."""
    out: list[Term] = []
    for t in sorted(set(terms), key=lambda t: (len(t), sorted(map(_lit_key, t)))):
        if not any(o <= t for o in out):
            out.append(t)
    if len(out) > limit:
        raise _TooBig
    return sorted(out, key=lambda t: terms.index(t))


# --------------------------------------------------------------------------- one field


def literal_prefix(pattern: str) -> str:
    """A string every full match of the RE2 ``pattern`` starts with (``""`` when none is proven).

    RE2's own analysis decides it, not a reading of the pattern's text: ``PossibleMatchRange``
    gives the least and the greatest string the pattern can match, and every match lies
    between them, so it starts with their common prefix. Classes such as ``[^](]`` or
    ``[[:alpha:]]``, ``\\Q...\\E`` quoting and flags are therefore read as RE2 reads them:
    ``/ab[^](]x|/y`` has the prefix ``/``, not ``/ab``.
    """
    try:
        low, high = compiled(pattern).possiblematchrange(len(pattern.encode()) + 8)
    except Exception:  # noqa: BLE001  (re2 raises a bare error when no range exists)
        return ""
    n = 0
    while n < min(len(low), len(high)) and low[n] == high[n]:
        n += 1
    common = low[:n]
    while common:
        try:
            return common.decode()
        except UnicodeDecodeError:  # a character cut in the middle
            common = common[:-1]
    return ""


def _compatible(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


_CONTRA = object()


def _merge(pos: list[Lit], neg: list[Lit]) -> Any:
    """Merge the literals of one field (and key) where the result is exact.

    Returns ``_CONTRA`` when no value satisfies them all, else ``(positives, negatives)``
    with implied literals removed; several may remain when they cannot be merged.
    """
    pos = sorted(set(pos), key=_lit_key)
    neg = sorted(set(neg), key=_lit_key)
    absent = [n for n in neg if n[0].matcher.kind == "present"]
    if absent:
        return _CONTRA if pos else ([], absent[:1])
    if len(pos) > 1:
        pos = [p for p in pos if p[0].matcher.kind != "present"]
    exact = next((p for p in pos if p[0].matcher.kind == "exact"), None)
    if exact:
        value = exact[0].matcher.value
        if not all(p[0].matcher.matches(value) for p in pos):
            return _CONTRA
        if any(n[0].matcher.matches(value) for n in neg):
            return _CONTRA
        return [exact], []
    prefixes = sorted((p for p in pos if p[0].matcher.kind == "prefix"),
                      key=lambda p: -len(p[0].matcher.value))
    prefix = prefixes[0] if prefixes else None
    if prefix and not all(prefix[0].matcher.value.startswith(p[0].matcher.value) for p in prefixes):
        return _CONTRA
    regexes = [p for p in pos if p[0].matcher.kind == "regex"]
    starts = {r: literal_prefix(r[0].matcher.value) for r in regexes}
    for a, b in itertools.combinations(regexes, 2):
        if not _compatible(starts[a], starts[b]):
            return _CONTRA
    if prefix:
        for r in regexes:
            if not _compatible(starts[r], prefix[0].matcher.value):
                return _CONTRA
        if any(starts[r].startswith(prefix[0].matcher.value) for r in regexes):
            prefix = None  # the regex only matches values with that prefix
    kept = ([prefix] if prefix else []) + regexes
    if not kept:
        kept = pos[:1]  # "present" alone
    kept_neg = []
    for n in neg:
        m = n[0].matcher
        implied = False
        for p in kept:
            q = p[0].matcher
            if q.kind == "prefix":
                start = q.value
            elif q.kind == "regex":
                start = starts[p]
                if m.kind == "exact" and not q.matches(m.value):
                    implied = True
                if m.kind == "regex" and m.value == q.value:
                    return _CONTRA
            else:
                continue
            if m.kind == "exact" and not _compatible(m.value, start):
                implied = True
            elif m.kind == "prefix":
                if start.startswith(m.value):
                    return _CONTRA
                if not _compatible(m.value, start):
                    implied = True
            elif m.kind == "regex" and not _compatible(literal_prefix(m.value), start):
                implied = True
        if not implied:
            kept_neg.append(n)
    return kept, kept_neg


def _string_match(m: Matcher) -> dict[str, str]:
    return {} if m.kind == "present" else {m.kind: m.value}


def _as_regex(m: Matcher) -> str:
    if m.kind == "exact":
        return re2.escape(m.value)
    if m.kind == "prefix":
        return re2.escape(m.value) + "(?s:.*)"
    return m.value


# --------------------------------------------------------------------------- one block


@dataclass
class _Lowered:
    """Result of lowering a term: blocks, a contradiction, or a literal to guard."""

    blocks: list[dict[str, Any]] | None = None
    contra: bool = False
    split: Lit | None = None


@functools.lru_cache(maxsize=8192)
def _lower(lits: Term, own: Term, absence: bool = True) -> _Lowered:
    """Istio match blocks (OR-ed) equal to the conjunction ``lits`` (cached: do not mutate).

    ``own`` are the literals of the route's own term (the rest is context); only they may be
    returned as ``split`` -- a literal to take out of the term and guard against.
    ``absence``: negated header predicates are written ``withoutHeaders``; when ``False`` (a
    target that cannot match a header's absence, Gateway API's ``HTTPRouteMatch``), a negated
    header ``exact`` or ``regex`` of ``own`` is split like a negated path (a negated header
    ``prefix`` or ``present``, or one of the context, is still written ``withoutHeaders``, for
    the target to refuse: its guard would need a header prefix or presence match).

    Raises:
        _Refusal: the conjunction cannot be expressed.
    """
    groups: dict[tuple[str, str], tuple[list[Lit], list[Lit]]] = defaultdict(lambda: ([], []))
    for lit in lits:
        groups[(lit[0].field, lit[0].key)][0 if lit[1] else 1].append(lit)
    merged = {}
    for (field, key), (pos, neg) in sorted(groups.items()):
        result = _merge(pos, neg)
        if result is _CONTRA:
            return _Lowered(contra=True)
        merged[(field, key)] = result
    for (field, key), (pos, neg) in merged.items():
        if len(pos) > 1:
            mine = [p for p in pos if p in own]
            if field == "header" and mine:
                return _Lowered(split=mine[-1])
            a, b = sorted(pos[:2], key=lambda p: p[0].column)
            raise _Refusal(
                f"`{_lit_text(a)}` and `{_lit_text(b)}` cannot both be required in one Istio match: "
                f"it holds one {field} matcher, and RE2 has no intersection", (b if b in own else a)[0],
                hint="write them as one matcher")
        if neg and field != "header":
            mine = [n for n in neg if n in own]
            if not mine:
                raise _Refusal(f"`{_lit_text(neg[0])}` cannot be expressed in this context", neg[0][0])
            return _Lowered(split=mine[0])
        if neg and field == "header" and not absence:
            mine = [n for n in neg if n in own and n[0].matcher.kind in ("exact", "regex")]
            if mine:
                return _Lowered(split=mine[-1])
    gateways = [k for k in merged if k[0] == "gateway"]
    sources = [k for k in merged if k[0] in _SOURCE_FIELDS]
    if gateways and sources:
        g = merged[gateways[0]][0][0]
        s = merged[sources[0]][0][0]
        raise _Refusal(f"`{_lit_text(g)}` and `{_lit_text(s)}` cannot be in one Istio match: Istio "
                       "ignores sourceLabels and sourceNamespace in a match that names gateways",
                       (s if s in own else g)[0])
    block: dict[str, Any] = {}
    choices: list[list[tuple[str, str, dict[str, str]]]] = []
    for (field, key), (pos, neg) in merged.items():
        if field == "header":
            if pos:
                block.setdefault("headers", {})[key] = _string_match(pos[0][0].matcher)
            if not neg:
                continue
            if len(neg) == 1:
                m = neg[0][0].matcher
            else:
                m = Matcher("regex", "|".join(f"(?:{_as_regex(n[0].matcher)})" for n in neg))
                if len(m.value) > cond.MAX_REGEX_LENGTH:
                    mine = [n for n in neg if n in own]
                    if not mine:
                        raise _Refusal(f"the negated matchers of header {as_yaml(key)} do not fit in one "
                                       "regex of 1024 characters", neg[0][0])
                    return _Lowered(split=mine[-1])
            without = ("withoutHeaders", key, _string_match(m))
            if m.kind != "present" and not pos and m.matches(""):
                # treat_missing_header_as_empty would reject a missing header: add "absent"
                choices.append([without, ("withoutHeaders", key, {})])
            else:
                choices.append([without])
            continue
        m = pos[0][0].matcher
        if field in cond.ALWAYS_PRESENT:
            block[field] = _string_match(m)
        elif field == "query":
            block.setdefault("queryParams", {})[key] = _string_match(m)
        elif field == "port":
            block["port"] = int(m.value)
        elif field == "source_label":
            block.setdefault("sourceLabels", {})[key] = m.value
        elif field == "source_namespace":
            block["sourceNamespace"] = m.value
        else:
            block["gateways"] = [m.value]
    blocks = []
    for combo in itertools.product(*choices):
        b = {k: dict(v) if isinstance(v, dict) else v for k, v in block.items()}
        for section, key, sm in combo:
            b.setdefault(section, {})[key] = sm
        blocks.append(_ordered(b))
    return _Lowered(blocks=blocks)


def _ordered(block: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k in _BLOCK_ORDER:
        if k in block:
            v = block[k]
            out[k] = {n: v[n] for n in sorted(v)} if k in ("headers", "withoutHeaders",
                                                            "queryParams", "sourceLabels") else v
    return out


# --------------------------------------------------------------------------- route lists


def _merge_gateways(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks equal but for ``gateways`` as one block listing them all (``gateways`` is an OR)."""
    out: list[dict[str, Any]] = []
    for b in blocks:
        rest = {k: v for k, v in b.items() if k != "gateways"}
        for o in out:
            same = {k: v for k, v in o.items() if k != "gateways"} == rest
            if "gateways" in b and "gateways" in o and same:
                o["gateways"] = o["gateways"] + [g for g in b["gateways"] if g not in o["gateways"]]
                break
        else:
            out.append(dict(b))
    return out


def _merge_neighbours(routes: list["_Out"], names: list[str]) -> list["_Out"]:
    """Adjacent routes carrying the same spec route as one route with both routes' blocks.

    Exact: a request matching the first's blocks or else the second's went to the same
    destination. The merged route keeps the spec route's own name if either had it.
    """
    out: list[_Out] = []
    for r in routes:
        if out and out[-1].index == r.index and out[-1].blocks and r.blocks:
            last = out[-1]
            name = r.name if r.name == names[r.index] else last.name
            merged = last.blocks + [b for b in r.blocks if b not in last.blocks]
            out[-1] = _Out(r.index, name, _merge_gateways(merged))
        else:
            out.append(r)
    return out


@dataclass
class _Out:
    index: int  # spec route whose destination this Istio route carries
    name: str
    blocks: list[dict[str, Any]]


class _Compiler:
    def __init__(self, names: list[str], max_routes: int, absence: bool = True) -> None:
        self.names = names
        self.max_routes = max_routes
        self.absence = absence  # negated headers as withoutHeaders (else guarded: see _lower)
        self.size = 0  # Envoy routes emitted so far

    def compile(self, routes: list[tuple[int, Expr]], context: list[Term]) -> list[_Out]:
        """Istio routes equal to the first-match list ``routes`` on requests in ``context``.

        ``routes`` are ``(spec index, condition)``; ``context`` is an OR of terms that every
        emitted block includes, so requests outside it match none of the result.
        """
        out: list[_Out] = []
        guards: dict[int, int] = defaultdict(int)
        for pos in range(len(routes)):
            if self.route(routes, pos, context, guards, out):
                break
        return out

    def route(self, routes: list[tuple[int, Expr]], pos: int, context: list[Term],
              guards: dict[int, int], out: list[_Out]) -> bool:
        """Append route ``pos`` of ``routes`` to ``out``, its guards first.

        Returns whether it takes every request of ``context`` (later routes are unreachable).
        """
        index, expr = routes[pos]
        if expr == cond.FALSE:
            return False
        try:
            blocks = self._blocks(routes, pos, context, guards, out)
        except _Refusal as e:
            e.index = index if e.index is None else e.index  # the innermost route is the culprit
            raise
        if not blocks:
            return False
        # the route takes every request of the context when each context term's own block
        # is among its blocks (all the term's literals were guarded away or implied)
        takes_all = all(b in blocks for k in context for b in (_lower(k, k).blocks or []))
        blocks = _merge_gateways(blocks)
        self._grow(len(blocks))
        out.append(_Out(index, self.names[index], blocks))
        return takes_all

    def _blocks(self, routes: list[tuple[int, Expr]], pos: int, context: list[Term],
                guards: dict[int, int], out: list[_Out]) -> list[dict[str, Any]]:
        """The match blocks of route ``pos``, appending the guards it needs to ``out``."""
        index, expr = routes[pos]
        blocks: list[dict[str, Any]] = []
        # (context, term, what earlier guards of this term established)
        pending = [(k, t, ()) for k in context for t in _dnf(expr, self.max_routes)]
        while pending:
            k, t, learned = pending.pop(0)
            lowered = _lower(k | t, t - k, self.absence)
            if lowered.contra:
                continue
            if lowered.blocks is not None:
                blocks.extend(b for b in lowered.blocks if b not in blocks)
                continue
            # the term's own instance of the literal, whose column points into this route
            lit = next(x for x in t if x == lowered.split)
            rest = t - {lit}
            opposite = (lit[0], not lit[1])
            guard = self._guard_context(k, rest, opposite)
            if guard is not None:
                # a request in the guard that passed an earlier guard of this term (whose
                # match, less the guarded literal's opposite, the guard includes) was not
                # matched by it, so it satisfies that earlier literal
                known = {p: s for p, s in guard}
                known.update({p: s for (before, (p, s)) in learned if before <= guard})
                tail = [(i, cond.simplify(e, known)) for i, e in routes[pos:]]
                if not any(e == cond.TRUE for _, e in tail):
                    raise _Refusal(
                        f"`{_lit_text(lit)}` needs guard routes, which are exact only when a "
                        "later route catches every remaining request", lit[0],
                        hint="add a last route without `when`")
                guards[index] += 1
                prefix = f"{self.names[index]}-guard-{guards[index]}-"
                for g in self.compile(tail, [guard]):
                    out.append(_Out(g.index, prefix + g.name, g.blocks))
                learned = (*learned, (guard - {opposite}, lit))
            pending.insert(0, (k, rest, learned))
        return blocks

    def _guard_context(self, k: Term, rest: Term, opposite: Lit) -> Term | None:
        """The guard's match: ``k``, ``opposite`` and as much of ``rest`` as one block holds.

        Returns ``None`` when no request can satisfy ``k and rest and opposite`` (no guard
        needed).
        """
        guard = k | {opposite}
        first = _lower(guard, frozenset(), self.absence)
        if first.contra:
            return None
        if first.blocks is None:
            raise _Refusal(f"`{_lit_text((opposite[0], not opposite[1]))}` cannot be guarded "
                           "in this context", opposite[0])
        for lit in sorted(rest, key=_lit_key):
            # without header absence, a negated header stays out of the guard (its route has
            # guards of its own for it): only whether it contradicts the guard counts
            left_out = not self.absence and lit[0].field == "header" and not lit[1]
            try:
                lowered = _lower(guard | {lit}, frozenset())
            except _Refusal:
                continue
            if lowered.contra:
                return None
            if lowered.blocks is not None and not left_out:
                guard = guard | {lit}
        return guard

    def _grow(self, n: int) -> None:
        self.size += n
        if self.size > self.max_routes:
            raise _TooBig


def _context_of(scope: str | None, limit: int, absence: bool = True) -> tuple[list[Term], Expr | None]:
    """The scope as an OR of block-expressible terms, or as an expression to AND in."""
    if scope is None:
        return [frozenset()], None
    expr = cond.simplify(cond.parse(scope))
    terms = _dnf(expr, limit)
    try:
        if all(_lower(t, t, absence).blocks is not None for t in terms):
            return terms, None
    except _Refusal:
        pass
    return [frozenset()], expr


def compile_http(routes: Sequence[SpecRoute], *, scope: str | None = None,
                 max_routes: int = MAX_ROUTES, header_absence: bool = True) -> list[dict[str, Any]]:
    """Istio ``VirtualService.spec.http`` routes equal to the spec's first-match route list.

    For every request, the first of the returned routes whose ``match`` accepts it (istio/api
    ``virtual_service.proto``: blocks OR-ed, fields AND-ed, first route wins; envoy matching as
    in istio/istio ``pilot/pkg/networking/core/route/route.go`` and ``util.go``
    ``ConvertToEnvoyMatch``: regexes are RE2 full matches, ``{}`` is presence,
    ``withoutHeaders`` inverts with a missing header taken as ``""``) carries the destination
    of the first spec route whose condition holds -- and no route matches when no spec route
    does.

    Args:
        routes: the spec's routes in order; a catch-all (``when=None``) only last.
        scope: a condition ANDed onto every route, the catch-all included (the renderer's
            ``gateway "mesh" or (gateway "ns/gw" and (uri prefix "/p"))`` for exposed paths).
        max_routes: bound on the output size in Envoy routes (one per match block).
        header_absence: write negated header predicates as ``withoutHeaders`` (Istio). ``False``
            for a target whose matches cannot say a header is absent or differs (Gateway API
            ``HTTPRouteMatch``): a negated header ``exact`` or ``regex`` predicate is guarded as
            a negated path is (the guard matches the header's value and sends the request on to
            the later routes); a negated header ``prefix`` or ``present``, and the guard of a
            second matcher on one header, are still written ``withoutHeaders`` for the caller
            to refuse.

    No route left for a proxy: istiod builds each proxy's routes from the match blocks that
    apply to it (a block's ``port``, ``gateways``, ``sourceLabels``, ``sourceNamespace``) and,
    when none applies, leaves the whole VirtualService out of that proxy's config (route.go
    ``BuildHTTPRoutesForVirtualService``: "no routes matched"); a sidecar then sends the
    request by the Service's default route to *every* version. The spec means 404 there (no
    route matches), so when no route takes every request and no block applies to every
    sidecar on every port (``routes: [{when: 'port 8080'}]``, or only ``source namespace``
    routes), a last route :data:`NO_ROUTE` answering 404 (``directResponse``) is added: it
    keeps the VirtualService in every proxy's config and says out loud what the spec means.

    Returns:
        ``[{"name": ..., "match": [...], **body}, ...]``; ``match`` is left out of a route that
        takes every request. Names map back with :func:`spec_route_name`.

    Raises:
        SpecErrors: every route's errors: parse errors (placed at the column), conditions
            that cannot be expressed exactly (naming the sub-expression), output over the bound.
    """
    errors: list[SpecError] = []
    parsed: list[tuple[int, Expr]] = []
    for i, r in enumerate(routes):
        if r.when is None:
            parsed.append((i, cond.TRUE))
            continue
        try:
            parsed.append((i, cond.simplify(cond.parse(r.when, r.place))))
        except SpecError as e:
            errors.append(e)  # compile the others all the same, to report their errors too
    context, folded = _context_of(scope, max_routes, header_absence)
    if folded is not None:
        parsed = [(i, cond.simplify(cond.And((folded, e)))) for i, e in parsed]
    compiler = _Compiler([r.name for r in routes], max_routes, header_absence)
    out: list[_Out] = []
    guards: dict[int, int] = defaultdict(int)
    for pos, (i, _expr) in enumerate(parsed):
        route = routes[i]
        size, length = compiler.size, len(out)
        try:
            if compiler.route(parsed, pos, context, guards, out):
                break
        except _Refusal as e:
            culprit = routes[i if e.index is None else e.index]
            place = culprit.place
            if place and e.pred:
                place = place.shifted(e.pred.column)
            where = "" if culprit is route else f" (in the guard routes of {as_yaml(route.name)})"
            errors.append(SpecError(f"route {as_yaml(culprit.name)}{where}: {e.message}", place=place,
                                    hint=e.hint))
            compiler.size, out[length:] = size, []
        except _TooBig:
            errors.append(SpecError(
                f"route {as_yaml(route.name)}: the compiled routes exceed the bound of {max_routes} "
                "Envoy routes (match blocks) per VirtualService", place=route.place,
                hint="simplify the condition: fewer negated non-header predicates, or fewer ORs"))
            break
    merged = _merge_neighbours(out, [r.name for r in routes])
    spec_names = {r.name for r in routes}
    if NO_ROUTE in spec_names:
        clash = next(r for r in routes if r.name == NO_ROUTE)
        errors.append(SpecError(f"route name {as_yaml(NO_ROUTE)} is kept for the route meshgen adds to "
                                "answer 404 where no route matches", place=clash.place,
                                hint="rename the route"))
    for o in merged:
        if o.name != routes[o.index].name and o.name in spec_names:
            clash = next(r for r in routes if r.name == o.name)
            errors.append(SpecError(f"route name {as_yaml(o.name)} is also the name of a generated guard "
                                    "route", place=clash.place,
                                    hint="names with '-guard-<n>-' are kept for guard routes; rename it"))
    SpecErrors.collect(errors)
    result = []
    for o in merged:
        entry: dict[str, Any] = {"name": o.name}
        if o.blocks and {} not in o.blocks:
            entry["match"] = copy.deepcopy(o.blocks)
        entry.update(copy.deepcopy(routes[o.index].body))  # no shared nodes (YAML anchors)
        result.append(entry)
    if not any(_everywhere(b) for r in result for b in r.get("match") or [{}]):
        result.append({"name": NO_ROUTE, **copy.deepcopy(NO_ROUTE_BODY)})
    return result


def _everywhere(block: dict[str, Any]) -> bool:
    """Whether istiod keeps ``block`` for every sidecar on every port (no port, no sources,
    no gateways other than ``mesh``)."""
    if block.get("port") or block.get("sourceLabels") or block.get("sourceNamespace"):
        return False
    return not block.get("gateways") or "mesh" in block["gateways"]
