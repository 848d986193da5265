"""Jinja2 for templates that users write: sandboxed, bounded in size and work, errors placed.

Two kinds of template come from a config repository: the repo's own ``templates/`` (overriding
meshgen's Istio templates) and the PromQL ``query`` of a custom rollout metric. Both run in
Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` (no attribute of Python's internals is
reachable), and on top of that in :class:`BoundedEnvironment`:

* every string, list or number a template computes stays small: ``'a' * 10**10``, ``2 ** 10**9``,
  ``'x'.ljust(10**9)``, ``'%9999999999s' | format(1)``, ``s.replace('', s)`` are refused before
  Python allocates anything (:data:`MAX_SIZE` characters or items, :data:`MAX_INT_BITS` bits);
* all ``range()`` calls of one render together yield at most :data:`MAX_RANGE_ITEMS` numbers,
  so nested loops cannot spin for hours;
* the output is read piece by piece and cut at the caller's limit (:func:`render`).

Any error a template raises at run time (``1/0``, ``[].pop()``, a ``TypeError`` of ``format``,
a recursion) comes back as :class:`TemplateFailure` with the template line it happened on, for
the caller to turn into a placed error. Wall-clock limits are the caller's (this module never
reads the clock): see :mod:`generator.render.timelimit`.
"""

from __future__ import annotations

import re
import traceback
from typing import Any, Callable

import jinja2
import jinja2.sandbox

#: Largest string, list or mapping (characters or items) one template operation may produce.
MAX_SIZE = 1_000_000
#: Largest integer (in bits) one template operation may produce.
MAX_INT_BITS = 4096
#: Numbers all ``range()`` calls of one render may yield together.
MAX_RANGE_ITEMS = 1_000_000
#: Default bound of one render's output, in characters.
MAX_OUTPUT = 4_000_000

_NUMBERS = re.compile(r"\d+")


class TemplateLimit(jinja2.sandbox.SecurityError):
    """A template asked for more than the bounds allow (a huge string, number, range or output)."""


class TemplateFailure(Exception):
    """A template failed while rendering.

    Attributes:
        message: what went wrong, in one line (``ZeroDivisionError: division by zero``).
        lineno: the template line it happened on, or 0 when unknown.
    """

    def __init__(self, message: str, lineno: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else None


def _check_int(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"{what}: a number larger than {MAX_INT_BITS} bits")


def _check_result_size(n: int, what: str) -> None:
    if n > MAX_SIZE:
        raise TemplateLimit(f"{what} would make {n} characters or items; the limit is {MAX_SIZE}")


def _check_format(fmt: Any, what: str) -> None:
    """A ``%`` or ``str.format`` pattern may not ask for a width or precision past MAX_SIZE."""
    if isinstance(fmt, str):
        if any(int(n) > MAX_SIZE for n in _NUMBERS.findall(fmt) if len(n) < 30) or any(
                len(n) >= 30 for n in _NUMBERS.findall(fmt)):
            raise TemplateLimit(f"{what}: a width or precision larger than {MAX_SIZE}")
        if "%" in fmt and "*" in fmt:
            raise TemplateLimit(f"{what}: '*' widths are not allowed in a template")


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            raise TemplateLimit(f"{what}: argument {value if value.bit_length() < 64 else 'too large'} "
                                f"is larger than {MAX_SIZE}")


def _check_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Bound the str methods whose result can be far larger than their arguments."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return
    if name in ("format", "format_map"):
        _check_format(owner, f"{name}()")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = (len(owner) + 1) if args[0] == "" else owner.count(args[0])
        _check_result_size(len(owner) + count * max(0, len(args[1]) - len(args[0])), "replace()")
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        items = args[0]
        total = len(owner) * len(items) + sum(len(i) for i in items if isinstance(i, str))
        _check_result_size(total, "join()")


class BoundedEnvironment(jinja2.sandbox.SandboxedEnvironment):
    """A sandboxed Jinja2 environment whose templates cannot ask for unbounded memory or loops."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.range_items = 0
        self.globals["range"] = self._range
        self.filters = {name: _bounded_filter(name, fn) for name, fn in self.filters.items()}

    def _range(self, *args: Any) -> range:
        _check_args(args, {}, "range()")
        items = range(*args)
        self.range_items += len(items)
        if self.range_items > MAX_RANGE_ITEMS:
            raise TemplateLimit(f"range() calls of one render yield more than {MAX_RANGE_ITEMS} numbers")
        return items

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                size = _size(seq)
                if size is not None and isinstance(n, int):
                    _check_result_size(size * max(n, 0), f"'*' of a {type(seq).__name__}")
        elif op == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if right * abs(left).bit_length() > MAX_INT_BITS:
                    raise TemplateLimit(f"'**': a number larger than {MAX_INT_BITS} bits")
        elif op == "+":
            a, b = _size(left), _size(right)
            if a is not None and b is not None:
                _check_result_size(a + b, "'+'")
        elif op == "%":
            _check_format(left, "'%' formatting")
        result = self.binop_table[op](left, right)
        _check_int(result, f"'{op}'")
        return result

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__, f"{value.__name__}()")
        return wrapped

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_args(args, kwargs, f"{getattr(__obj, '__name__', 'call')}()")
        _check_method(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its arguments bounded (``center(10**9)``, ``format`` widths, ``batch(10**9)``)."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.Environment))
                  and not hasattr(a, "environment")]
        if name == "format" and values:
            _check_format(values[0], "format")
        _check_args(tuple(values[1:]), kwargs, f"filter {name}")
        return fn(*args, **kwargs)

    for attr in ("jinja_pass_arg",):
        if hasattr(fn, attr):
            setattr(bounded, attr, getattr(fn, attr))
    bounded.__name__ = getattr(fn, "__name__", name)
    return bounded


def render(template: jinja2.Template, context: dict[str, Any], *, max_output: int = MAX_OUTPUT) -> str:
    """Render ``template`` in bounds.

    Raises:
        TemplateFailure: the template raised anything at run time, asked for more than the
            bounds, or produced more than ``max_output`` characters.
    """
    env = template.environment
    if isinstance(env, BoundedEnvironment):
        env.range_items = 0
    parts, size = [], 0
    try:
        for piece in template.generate(context):
            size += len(piece)
            if size > max_output:
                raise TemplateLimit(f"the output is larger than {max_output} characters")
            parts.append(piece)
    except jinja2.TemplateSyntaxError:
        raise
    except (Exception, RecursionError, MemoryError) as e:  # a user's template may raise anything
        raise TemplateFailure(_describe(e), _lineno(e, template)) from e
    return "".join(parts)


def _describe(error: BaseException) -> str:
    if isinstance(error, jinja2.UndefinedError | TemplateLimit):
        text = str(error)
    elif isinstance(error, RecursionError):
        text = "RecursionError: a macro or loop calls itself too deeply"
    elif isinstance(error, MemoryError):
        text = "MemoryError: the template asked for more memory than there is"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:500]


def _lineno(error: BaseException, template: jinja2.Template) -> int:
    names = {template.filename, "<template>", template.name}
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename in names and frame.lineno:
            return frame.lineno
    return 0

