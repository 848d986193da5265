"""The condition language of a route's ``when`` (DESIGN §2): parse, print, evaluate.

A condition is a boolean expression over request predicates::

    condition := or
    or        := and ("or" and)*
    and       := unary ("and" unary)*
    unary     := "not" unary | "(" or ")" | predicate
    predicate := "header" STRING matcher | "query" STRING matcher
               | ("uri" | "method" | "authority" | "scheme") matcher
               | "port" NUMBER | "source" "label" STRING "=" STRING | "source" "namespace" STRING
               | "gateway" STRING
    matcher   := ("exact" | "prefix" | "regex") STRING | "present"

``gateway STRING`` is true when the request arrives through that gateway: ``"mesh"`` for
sidecars, ``"<namespace>/<name>"`` for an Istio Gateway (Istio's ``HTTPMatchRequest.gateways``).
The renderer uses it to scope an exposed app's routes to its paths; users may write it too.

Inside a STRING, ``\\"`` stands for ``"`` and ``\\\\`` for ``\\``; any other backslash is kept
as written, so RE2 escapes such as ``\\.`` or ``\\d`` read as they do in the regex.

Meaning (the spec's, which the compiled Istio routes must reproduce exactly):

* ``regex`` is RE2 and must match the whole value, as Envoy's ``safe_regex`` does.
* Header names are case-insensitive (kept lower-case here, as Envoy does).
* A predicate on a header, query parameter or source label the request does not carry is
  false whatever its matcher, so ``not header "x-env" exact ""`` holds for a request without
  ``x-env``; ``present`` is true when the request carries it, even empty.

Values are refused here when Istio would refuse them (istio/istio
``pkg/config/validation``: header names ``[-_A-Za-z0-9]+``, an empty ``prefix`` except on
``uri``, an empty regex, a regex over 1024 characters) or when they are not RE2 (lookaround,
backreferences), so a parsed condition always renders to a VirtualService Istio accepts.

The syntax tree is made of small frozen value types: :class:`Pred` (one predicate),
:class:`Not`, :class:`And`, :class:`Or`, and the constants :data:`TRUE`/:data:`FALSE` that
simplification produces. Every predicate is a field, an optional key, and a
:class:`Matcher`; ``port``, ``source label``, ``source namespace`` and ``gateway`` are
``exact`` matchers on their field, which lets the compiler treat all fields alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import re2

from generator.errors import Place, SpecError

if TYPE_CHECKING:  # pragma: no cover
    from generator.routing.request import Request

#: Longest regex Istio accepts (istio/istio pkg/config/validation ``validateStringRegexp``).
MAX_REGEX_LENGTH = 1024

#: Fields whose predicates name a key (a header, a query parameter, a source label).
KEYED_FIELDS = ("header", "query", "source_label")
#: Fields that take a matcher in the language.
MATCHER_FIELDS = ("header", "query", "uri", "method", "authority", "scheme")
#: Fields every request carries (pseudo-headers and the path): ``present`` is always true.
ALWAYS_PRESENT = ("uri", "method", "authority", "scheme")

_HEADER_NAME = re.compile(r"[-_A-Za-z0-9]+")  # istio/istio validation ValidateHTTPHeaderName
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_GATEWAY = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[a-z0-9]([-a-z0-9.]*[a-z0-9])?)?")


@dataclass(frozen=True)
class Matcher:
    """How a value is matched: ``kind`` is ``exact``, ``prefix``, ``regex`` or ``present``.

    ``value`` is the string to compare with (``""`` for ``present``).
    """

    kind: str
    value: str = ""

    def matches(self, value: str) -> bool:
        """Whether a carried ``value`` matches (regex: RE2 full match, as Envoy ``safe_regex``)."""
        if self.kind == "exact":
            return value == self.value
        if self.kind == "prefix":
            return value.startswith(self.value)
        if self.kind == "regex":
            return compiled(self.value).fullmatch(value) is not None
        return True


@dataclass(frozen=True)
class Pred:
    """One predicate: ``field`` (``header``, ``query``, ``uri``, ``method``, ``authority``,
    ``scheme``, ``port``, ``source_label``, ``source_namespace``, ``gateway``), ``key`` (header
    name in lower case, query parameter or label name; ``""`` for other fields) and a matcher.

    ``column`` is the 0-based offset of the predicate in the condition text; it is left out of
    equality, so equal predicates written at different places are one predicate.
    """

    field: str
    key: str
    matcher: Matcher
    column: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    """Negation of ``item``."""

    item: "Expr"


@dataclass(frozen=True)
class And:
    """Conjunction of two or more ``items``."""

    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Or:
    """Disjunction of two or more ``items``."""

    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Const:
    """A constant truth value (made by simplification; not part of the written language)."""

    value: bool


TRUE = Const(True)
FALSE = Const(False)

Expr = Union[Pred, Not, And, Or, Const]


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> "re2._Regexp":
    """The RE2 program of ``pattern`` (cached); raises ``re2.error`` when it is not RE2."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


# --------------------------------------------------------------------------- evaluation


def value_of(pred: Pred, request: "Request") -> str | None:
    """The request's value for ``pred``'s field and key, or ``None`` when it does not carry it."""
    f = pred.field
    if f == "header":
        return request.headers.get(pred.key)
    if f == "query":
        return request.query.get(pred.key)
    if f == "source_label":
        return request.source_labels.get(pred.key)
    if f == "port":
        return str(request.port)
    if f == "source_namespace":
        return request.source_namespace
    return getattr(request, f)


def holds(expr: Expr, request: "Request") -> bool:
    """The spec's meaning of ``expr`` for ``request`` (DESIGN §2).

    A predicate on a header, query parameter or source label the request does not carry is
    false whatever the matcher; ``present`` is true when it is carried, even empty; ``regex``
    is an RE2 full match.
    """
    if isinstance(expr, Pred):
        value = value_of(expr, request)
        return value is not None and expr.matcher.matches(value)
    if isinstance(expr, Not):
        return not holds(expr.item, request)
    if isinstance(expr, And):
        return all(holds(e, request) for e in expr.items)
    if isinstance(expr, Or):
        return any(holds(e, request) for e in expr.items)
    return expr.value


# --------------------------------------------------------------------------- printing


def quote(text: str) -> str:
    """``text`` as a STRING of the condition language (double-quoted, `"` and `\\` escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _matcher_text(m: Matcher) -> str:
    return "present" if m.kind == "present" else f"{m.kind} {quote(m.value)}"


def pred_text(pred: Pred) -> str:
    """The canonical text of one predicate."""
    f, m = pred.field, pred.matcher
    if f in ("header", "query"):
        return f"{f} {quote(pred.key)} {_matcher_text(m)}"
    if f in ALWAYS_PRESENT:
        return f"{f} {_matcher_text(m)}"
    if f == "port":
        return f"port {m.value}"
    if f == "source_label":
        return f"source label {quote(pred.key)} = {quote(m.value)}"
    if f == "source_namespace":
        return f"source namespace {quote(m.value)}"
    return f"gateway {quote(m.value)}"


def to_text(expr: Expr) -> str:
    """The canonical text of ``expr``: parses back to an equal expression.

    Parentheses appear only where precedence (``not`` > ``and`` > ``or``) or the written
    grouping needs them.
    """
    if isinstance(expr, Pred):
        return pred_text(expr)
    if isinstance(expr, Const):
        return "true" if expr.value else "false"
    if isinstance(expr, Not):
        inner = to_text(expr.item)
        return f"not {inner}" if isinstance(expr.item, (Pred, Not, Const)) else f"not ({inner})"
    if isinstance(expr, And):
        return " and ".join(f"({to_text(e)})" if isinstance(e, (And, Or)) else to_text(e)
                            for e in expr.items)
    return " or ".join(f"({to_text(e)})" if isinstance(e, Or) else to_text(e) for e in expr.items)


# --------------------------------------------------------------------------- lexing


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "number", "(", ")", "=", "end"
    text: str
    column: int  # 0-based offset in the condition text


_PUNCT = "()="


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "the end of the condition"
    if tok.kind == "string":
        return f"the string {quote(tok.text)}"
    return f"'{tok.text}'"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text

    def tokens(self) -> list[_Token]:
        text, i, out = self.text, 0, []
        while i < len(text):
            c = text[i]
            if c.isspace():
                i += 1
            elif c in _PUNCT:
                out.append(_Token(c, c, i))
                i += 1
            elif c == '"':
                start, i, chars = i, i + 1, []
                while True:
                    if i >= len(text):
                        raise _ParseError(start, "this string is not closed (missing '\"')")
                    c = text[i]
                    if c == '"':
                        i += 1
                        break
                    if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                        chars.append(text[i + 1])
                        i += 2
                    else:
                        chars.append(c)
                        i += 1
                out.append(_Token("string", "".join(chars), start))
            elif c.isdigit():
                start = i
                while i < len(text) and text[i].isalnum():
                    i += 1
                word = text[start:i]
                if not word.isdigit():
                    raise _ParseError(start, f"'{word}' is not a number")
                out.append(_Token("number", word, start))
            elif c.isalpha() or c == "_":
                start = i
                while i < len(text) and (text[i].isalnum() or text[i] in "_-"):
                    i += 1
                out.append(_Token("word", text[start:i], start))
            else:
                raise _ParseError(i, f"unexpected character '{c}'")
        out.append(_Token("end", "", len(text)))
        return out


class _ParseError(Exception):
    def __init__(self, column: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.column = column
        self.message = message
        self.hint = hint


# --------------------------------------------------------------------------- parsing

_PREDICATE_WORDS = ("header", "query", "uri", "method", "authority", "scheme", "port", "source",
                    "gateway")
_EXPECT_UNARY = "a predicate (" + ", ".join(_PREDICATE_WORDS) + "), 'not' or '('"
_EXPECT_MATCHER = "a matcher ('exact', 'prefix', 'regex' or 'present')"


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _Lexer(text).tokens()
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expected(self, what: str, words: tuple[str, ...] = ()) -> _ParseError:
        """The error at the current token; a misspelt word of ``words`` gets a did-you-mean hint."""
        close = difflib.get_close_matches(self.tok.text, words, n=1, cutoff=0.6) if self.tok.kind == "word" else []
        return _ParseError(self.tok.column, f"expected {what}, found {_describe(self.tok)}",
                           hint=f"did you mean '{close[0]}'?" if close else None)

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "word" and self.tok.text == word

    def condition(self) -> Expr:
        expr = self.or_()
        if self.tok.kind != "end":
            raise self.expected("'and', 'or' or the end of the condition", ("and", "or"))
        return expr

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.is_word("or"):
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.unary()]
        while self.is_word("and"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Expr:
        if self.is_word("not"):
            self.take()
            return Not(self.unary())
        if self.tok.kind == "(":
            self.take()
            expr = self.or_()
            if self.tok.kind != ")":
                raise self.expected("')' or 'and', 'or'", ("and", "or"))
            self.take()
            return expr
        if self.tok.kind == "word" and self.tok.text in _PREDICATE_WORDS:
            return self.predicate()
        raise self.expected(_EXPECT_UNARY, (*_PREDICATE_WORDS, "not"))

    def string(self, what: str) -> _Token:
        if self.tok.kind != "string":
            raise self.expected(f"{what} (a double-quoted string)")
        return self.take()

    def predicate(self) -> Pred:
        word = self.take()
        col = word.column
        f = word.text
        if f in ("header", "query"):
            name = self.string(f"the {f} name")
            key = name.text
            if f == "header":
                if not _HEADER_NAME.fullmatch(key):
                    raise _ParseError(name.column, f"{quote(key)} is not a valid header name",
                                      hint="Istio accepts letters, digits, '-' and '_'")
                key = key.lower()
            elif not key:
                raise _ParseError(name.column, "the query parameter name is empty")
            return Pred(f, key, self.matcher(f), col)
        if f in ALWAYS_PRESENT:
            return Pred(f, "", self.matcher(f), col)
        if f == "port":
            if self.tok.kind != "number":
                raise self.expected("a port number")
            num = self.take()
            if not 1 <= int(num.text) <= 65535:
                raise _ParseError(num.column, f"port {num.text} is not between 1 and 65535")
            return Pred("port", "", Matcher("exact", str(int(num.text))), col)
        if f == "gateway":
            name = self.string("the gateway name ('mesh' or 'namespace/name')")
            if not _GATEWAY.fullmatch(name.text):
                raise _ParseError(name.column, f"{quote(name.text)} is not a gateway name",
                                  hint="write \"mesh\" or \"<namespace>/<gateway name>\"")
            return Pred("gateway", "", Matcher("exact", name.text), col)
        # source label / source namespace
        if self.is_word("label"):
            self.take()
            key = self.string("the label name")
            if not _label_key_ok(key.text):
                raise _ParseError(key.column, f"{quote(key.text)} is not a valid label name")
            if self.tok.kind != "=":
                raise self.expected("'='")
            self.take()
            value = self.string("the label value")
            if not _LABEL_VALUE.fullmatch(value.text) or len(value.text) > 63:
                raise _ParseError(value.column, f"{quote(value.text)} is not a valid label value")
            return Pred("source_label", key.text, Matcher("exact", value.text), col)
        if self.is_word("namespace"):
            self.take()
            ns = self.string("the namespace")
            if not _DNS_LABEL.fullmatch(ns.text):
                raise _ParseError(ns.column, f"{quote(ns.text)} is not a valid namespace name")
            return Pred("source_namespace", "", Matcher("exact", ns.text), col)
        raise self.expected("'label' or 'namespace' after 'source'", ("label", "namespace"))

    def matcher(self, f: str) -> Matcher:
        if self.is_word("present"):
            self.take()
            return Matcher("present")
        if not (self.tok.kind == "word" and self.tok.text in ("exact", "prefix", "regex")):
            raise self.expected(_EXPECT_MATCHER, ("exact", "prefix", "regex", "present"))
        kind = self.take().text
        value = self.string(f"the {kind} value")
        if kind == "prefix" and not value.text and f != "uri":
            raise _ParseError(value.column, f"an empty prefix is not allowed on {f}",
                              hint="Istio rejects an empty prefix except on uri; use 'present'")
        if kind == "regex":
            _check_regex(value)
        return Matcher(kind, value.text)


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def _check_regex(tok: _Token) -> None:
    pattern = tok.text
    if not pattern:
        raise _ParseError(tok.column, "an empty regex is not allowed",
                          hint="Istio rejects an empty regex; use 'present' or 'exact \"\"'")
    if len(pattern) > MAX_REGEX_LENGTH:
        raise _ParseError(tok.column, f"this regex has {len(pattern)} characters, more than "
                          f"the {MAX_REGEX_LENGTH} Istio accepts")
    try:
        compiled(pattern)
    except re2.error as e:
        reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        hint = "write it as RE2 (https://github.com/google/re2/wiki/Syntax)"
        if re.search(r"\(\?<?[=!]|\\[1-9]", pattern):
            hint = "RE2, which Envoy uses, has no lookahead, lookbehind or backreferences"
        raise _ParseError(tok.column, f"{quote(pattern)} is not an RE2 regex: {reason}",
                          hint=hint) from e


def parse(text: str, place: Place | None = None) -> Expr:
    """Parse a condition.

    Args:
        text: the condition as written in the spec (the ``when`` string).
        place: where the first character of ``text`` is in its YAML file, or ``None``.

    Returns:
        The syntax tree.

    Raises:
        SpecError: the text is not a condition, or a value Istio would refuse; the error's
            place is ``place`` moved to the offending column, and its message quotes that
            column (1-based, in the condition) and what was expected there.
    """
    try:
        return _Parser(text).condition()
    except _ParseError as e:
        where = place.shifted(e.column) if place else None
        raise SpecError(f"in condition, column {e.column + 1}: {e.message}", place=where,
                        hint=e.hint) from None


# --------------------------------------------------------------------------- algebra


def atoms(expr: Expr) -> set[Pred]:
    """All predicates of ``expr``."""
    if isinstance(expr, Pred):
        return {expr}
    if isinstance(expr, Not):
        return atoms(expr.item)
    if isinstance(expr, (And, Or)):
        return set().union(*(atoms(e) for e in expr.items))
    return set()


def simplify(expr: Expr, known: dict[Pred, bool] | None = None) -> Expr:
    """``expr`` with the truth values in ``known`` put in and constants folded away.

    Predicates always true by themselves (``uri present``, ``method present``, ...) fold to
    :data:`TRUE`. The result is :data:`TRUE`, :data:`FALSE` or an expression without constants.
    """
    known = known or {}
    if isinstance(expr, Pred):
        if expr in known:
            return Const(known[expr])
        if expr.field in ALWAYS_PRESENT and expr.matcher.kind == "present":
            return TRUE
        if expr.field == "uri" and expr.matcher.kind == "prefix" and not expr.matcher.value:
            return TRUE
        return expr
    if isinstance(expr, Not):
        inner = simplify(expr.item, known)
        return Const(not inner.value) if isinstance(inner, Const) else Not(inner)
    if isinstance(expr, (And, Or)):
        absorbing = isinstance(expr, Or)  # TRUE absorbs an Or, FALSE an And
        items = []
        for e in expr.items:
            s = simplify(e, known)
            if isinstance(s, Const):
                if s.value == absorbing:
                    return s
                continue
            items.append(s)
        if not items:
            return Const(not absorbing)
        return items[0] if len(items) == 1 else type(expr)(tuple(items))
    return expr
