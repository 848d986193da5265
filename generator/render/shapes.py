"""Fill a built-in template once per shape of its context, not once per object.

meshgen's own templates (``templates/*.yaml.j2``) lay out structure and do two things with a
spec value: pass it through the ``q`` filter (:mod:`generator.render.quoting`), which writes it
as one YAML flow value that parses back to the value itself, or test whether it is true. The
object a template yields, filled and parsed back, is therefore a function of its context's
*shape* -- every mapping's keys in order, every list's length, and each scalar's truth -- with
the scalars put where ``q`` wrote them. Apps written alike (most of a fleet) share a shape, and
so does one app in every environment its overrides leave alone.

:class:`Shapes` fills a template with a placeholder string in place of each true scalar the
second time a shape is seen, parses the text back once, and compiles the result into a function
that builds the object from the scalars (a Python expression, so a build costs what writing the
literal costs). Every later context of that shape calls the function: no Jinja2, no ``q``, no
YAML parse. The first context of a shape is filled the usual way (a repository whose objects all
differ pays nothing more than the shape's computation).

The built object equals the one filling and parsing would give: scalars that ``q`` would not
write back exactly as themselves (a string with a lone surrogate, which YAML cannot escape), a
mapping key that is not a string, or any other type are refused (:class:`Unshaped`), and so is
a shape whose filled text holds a placeholder, or a piece of one, other than as a whole scalar
(a template that iterates over a string or changes a value instead of quoting it): those are
filled the usual way, as is everything of a template a repository overrides (the renderer
never asks for those).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import yaml

#: Starts every placeholder (which ends with NUL too): the static text of a built-in template
#: holds no NUL, so a NUL anywhere but in a whole placeholder is a piece of a value.
_MARK = "\x00meshgen-value-"
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSEEN, _SEEN = object(), object()


class Unshaped(Exception):
    """The context (or its shape) cannot be built without filling the template: fill it."""


def _shape(value: Any, values: list[Any]) -> Any:
    """A hashable key of ``value``'s shape; each true scalar is appended to ``values`` (and
    marked ``"$"`` in the key), a false one is in the key itself.

    Raises:
        Unshaped: a type other than dict, list, tuple, str, int, float, bool and ``None``, a
            key that is not a string, or a string ``q`` would not write back as itself.
    """
    kind = type(value)
    if kind is str:
        if not value:
            return "''"
        if not value.isascii() and _SURROGATE.search(value):
            raise Unshaped
        values.append(value)
        return "$"
    if kind is dict:
        key: list[Any] = ["{"]
        for k, v in value.items():
            if type(k) is not str or (not k.isascii() and _SURROGATE.search(k)):
                raise Unshaped
            key.append(k)
            key.append(_shape(v, values))
        return tuple(key)
    if kind is list or kind is tuple:
        return ("[" if kind is list else "(", *(_shape(v, values) for v in value))
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        if value:
            values.append(value)
            return "$"
        return repr(value)  # 0, 0.0, -0.0: written as they are
    raise Unshaped


def _placeheld(value: Any, count: list[int]) -> Any:
    """``value`` with each true scalar replaced by the next placeholder (in :func:`_shape`'s order)."""
    kind = type(value)
    if kind is dict:
        return {k: _placeheld(v, count) for k, v in value.items()}
    if kind is list:
        return [_placeheld(v, count) for v in value]
    if kind is tuple:
        return tuple(_placeheld(v, count) for v in value)
    if kind is bool or value is None or not value:
        return value
    count[0] += 1
    return f"{_MARK}{count[0] - 1}\x00"


def _source(node: Any, places: dict[str, int], constants: list[Any]) -> str:
    """A Python expression that builds ``node`` (a parsed, filled template) with ``v[i]`` for
    placeholder ``i``."""
    kind = type(node)
    if kind is str:
        at = places.get(node)
        if at is not None:
            return f"v[{at}]"
        if "\x00" in node:  # a value the template did more with than quote it (cut, iterated over)
            raise Unshaped
        return repr(node)
    if kind is dict:
        return "{" + ", ".join(f"{_source(k, places, constants)}: {_source(v, places, constants)}"
                               for k, v in node.items()) + "}"
    if kind is list:
        return "[" + ", ".join(_source(v, places, constants) for v in node) + "]"
    if node is None or kind is bool or kind is int:
        return repr(node)
    constants.append(node)  # a float (repr of nan or inf is not Python)
    return f"c[{len(constants) - 1}]"


class Shapes:
    """The object each filled template yields, built per shape of its context.

    Args:
        fill: ``fill(template, context)``, the template's text (Jinja2's ``Template.render``).
        parse: ``parse(text)``, the text parsed back into plain values
            (:func:`generator.spec.loader.parse_plain`).
    """

    def __init__(self, fill: Callable[[Any, dict[str, Any]], str], parse: Callable[[str], Any]) -> None:
        self._fill = fill
        self._parse = parse
        self._builders: dict[Any, Any] = {}

    def build(self, template: Any, context: dict[str, Any]) -> Any:
        """The object ``template`` filled with ``context`` and parsed back would be.

        Raises:
            Unshaped: fill the template: the first context of its shape, or one this module
                cannot stand for (see the module docstring).
        """
        values: list[Any] = []
        try:
            key = (template, _shape(context, values))
        except RecursionError:
            raise Unshaped from None
        builder = self._builders.get(key, _UNSEEN)
        if builder is _UNSEEN:
            self._builders[key] = _SEEN
            raise Unshaped
        if builder is _SEEN:
            builder = self._builders[key] = self._compile(template, context, len(values))
        if builder is None:
            raise Unshaped
        return builder(values)

    def _compile(self, template: Any, context: dict[str, Any], n: int) -> Callable[[list[Any]], Any] | None:
        """The builder of ``context``'s shape, or ``None`` when it has none."""
        count = [0]
        held = _placeheld(context, count)
        places = {f"{_MARK}{i}\x00": i for i in range(n)}
        constants: list[Any] = []
        try:
            source = _source(self._parse(self._fill(template, held)), places, constants)
            return eval(f"lambda v: {source}", {"c": constants, "__builtins__": {}})  # noqa: S307 (own text)
        except Exception:  # a failing fill or parse, or an expression Python cannot compile: fill each time
            return None


# -- dumping once per shape ---------------------------------------------------------------------

#: Starts and ends every placeholder of :class:`Dumps`: letters and digits, which YAML writes plain.
_DUMP_MARK = "q7mgv"
_DUMP_HOLE = re.compile(_DUMP_MARK + r"([0-9]+)" + _DUMP_MARK)
#: Strings YAML writes plain and as themselves wherever a block mapping or sequence holds them:
#: a letter or ``_`` first (no number, timestamp, ``.inf``, indicator or document marker), then
#: letters, digits, ``_ . / -`` (no space to fold at, no ``: `` or `` #``) -- less the words
#: PyYAML's resolver reads as a bool or null (``yaml/resolver.py``, YAML 1.1 ``bool``, ``null``).
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")
_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null"})
_SPACE = re.compile(r"\s")
_HOLE, _LITERAL, _NONE, _TRUE, _FALSE, _ZERO, _DICT, _LIST = (object() for _ in range(8))


_REPRESENTER = yaml.representer.SafeRepresenter()


def _float_text(value: float) -> str:
    """A float as PyYAML's dumpers write it (``SafeRepresenter.represent_float``: ``.nan``,
    ``.inf``, ``-.inf``, else ``repr`` in lower case with ``.0`` before a bare exponent)."""
    return _REPRESENTER.represent_float(value).value


class Dumps:
    """The YAML text of plain objects, dumped once per shape.

    A block-style dump (:func:`generator.render.render.dump`: keys sorted, no line folding
    below 65,536 columns) writes each scalar on its own line after its key or ``-``, so where
    a scalar goes and how its neighbours are written never depends on another scalar's text.
    An object's *shape* here is every mapping's keys in order, every list's length, and every
    scalar but those YAML writes plain and as themselves (:meth:`plain`: strings without
    whitespace that read back as strings, non-zero integers, and floats, which PyYAML's
    ``SafeRepresenter.represent_float`` writes as text that reads back as a float), which are
    holes. The first object of a shape is dumped with a placeholder in each hole and the text
    kept as a ``%``-format; every later object of that shape is that format filled with its
    holes' values (a string's text, an integer's ``str``, a float's text as the representer
    writes it): the exact text the dump writes.

    Args:
        dump: ``dump(obj)``, the canonical text of a block-style PyYAML dump (keys sorted or
            not): :func:`generator.render.render.dump`, or a status file's dump.
    """

    def __init__(self, dump: Callable[[Any], str]) -> None:
        self._dump = dump
        self._known: dict[str, Any] = {}
        self._formats: dict[Any, tuple[str, tuple[int, ...]] | None] = {}

    def plain(self, text: str) -> bool:
        """Whether the dump writes the string ``text`` plain, as itself, on no more than one line."""
        return self._state(text) is _HOLE

    def _state(self, text: str) -> Any:
        """``_HOLE`` for a string :meth:`plain` writes, ``_LITERAL`` for another, ``None`` for
        one holding a placeholder's text; remembered."""
        state = self._known.get(text)
        if state is None:
            if _DUMP_MARK in text:
                return None
            if text and ((_PLAIN.match(text) and text.lower() not in _WORDS)
                         or (not _SPACE.search(text) and self._dump(text) in (f"{text}\n", f"{text}\n...\n"))):
                state = _HOLE
            else:
                state = _LITERAL
            self._known[text] = state
        return state

    def _shape(self, obj: Any, values: list[Any]) -> tuple[Any, ...]:
        """A hashable key of ``obj``'s shape (a flat prefix code: a mapping is ``_DICT``, its
        length, then each key and its value's code; a list ``_LIST``, its length, its items'
        codes); each hole's value is appended to ``values``, in order.

        Raises:
            Unshaped: see :meth:`dump`.
        """
        flat: list[Any] = []
        push, hold = flat.append, values.append
        known, state_of = self._known.get, self._state
        seen: set[int] = set()
        mark = seen.add

        def scalar(node: Any, kind: type) -> None:
            if kind is int:
                if node:
                    hold(node)
                    push(_HOLE)
                else:
                    push(_ZERO)
            elif node is None:
                push(_NONE)
            elif kind is bool:
                push(_TRUE if node else _FALSE)
            elif kind is float:
                hold(_float_text(node))
                push(_HOLE)
            else:
                raise Unshaped  # a tuple, any other type: dumped as it is

        def walk(node: Any) -> None:
            # strings, most of the leaves, are handled in the loops, without a call
            if type(node) is dict:
                items: Any = node.items()
                tag = _DICT
            elif type(node) is list:
                items = node
                tag = _LIST
            elif type(node) is str:
                items = (node,)
                tag = None
            else:
                scalar(node, type(node))
                return
            if tag is not None:
                size = len(seen)
                mark(id(node))
                if len(seen) == size:  # a node held twice: the dump writes an anchor and an alias
                    raise Unshaped
                push(tag)
                push(len(node))
            for v in items:
                if tag is _DICT:
                    k, v = v
                    if type(k) is not str or _DUMP_MARK in k:
                        raise Unshaped
                    push(k)
                kind = type(v)
                if kind is str:
                    state = known(v) or state_of(v)
                    if state is _HOLE:
                        hold(v)
                        push(_HOLE)
                    elif state is _LITERAL:
                        push(v)
                    else:
                        raise Unshaped
                elif kind is dict or kind is list:
                    walk(v)
                else:
                    scalar(v, kind)

        walk(obj)
        return tuple(flat)

    def dump(self, obj: Any) -> str:
        """The dump's text of ``obj`` (``dict``, ``list``, ``str``, ``int``, ``bool``, ``None``).

        Raises:
            Unshaped: dump ``obj`` itself: it holds a tuple, another type, a key that is not a
                string, a node twice, or a placeholder's text.
        """
        values: list[Any] = []
        try:
            key = self._shape(obj, values)
        except RecursionError:
            raise Unshaped from None
        made = self._formats.get(key, _UNSEEN)
        if made is _UNSEEN:
            made = self._formats[key] = self._compile(obj, len(values))
        if made is None:
            raise Unshaped
        text, order = made
        return text % tuple([values[i] for i in order]) if order else text

    def text(self, obj: Any) -> str:
        """:meth:`dump` of ``obj``, or the dump's own text of it where its shape cannot be
        used (:class:`Unshaped`): the same bytes either way."""
        try:
            return self.dump(obj)
        except Unshaped:
            return self._dump(obj)

    def _compile(self, obj: Any, n: int) -> tuple[str, tuple[int, ...]] | None:
        """The format of ``obj``'s shape and the order its ``n`` holes appear in, or ``None``."""
        count = [0]

        def held(node: Any) -> Any:
            kind = type(node)
            if kind is dict:
                return {k: held(v) for k, v in node.items()}
            if kind is list:
                return [held(v) for v in node]
            if (kind is str and node and self.plain(node)) or (kind is int and node) or kind is float:
                count[0] += 1
                return f"{_DUMP_MARK}{count[0] - 1}{_DUMP_MARK}"
            return node

        pieces = _DUMP_HOLE.split(self._dump(held(obj)))
        order = tuple(int(i) for i in pieces[1::2])
        if count[0] != n or sorted(order) != list(range(n)):
            return None
        if not order:
            return pieces[0], order
        return "%s".join(p.replace("%", "%%") for p in pieces[0::2]), order
