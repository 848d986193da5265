"""The quoting filter: any spec value as exactly one YAML flow value.

Templates lay out structure; spec values reach the YAML text only through :func:`quote`
(the Jinja2 filter ``q``). Strings become double-quoted scalars with every character outside
printable ASCII, and ``"`` and ``\\``, escaped (YAML 1.2 §5.7), so a value holding quotes,
newlines, ``- destination:`` or ``{}`` stays one string and cannot inject structure. Mappings
and lists become flow collections of quoted values. The rendered text is parsed back with
PyYAML's C loader, so what the template meant is what gets written.
"""

from __future__ import annotations

import math
import re
from typing import Any

_SAFE = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII without '"' and '\'
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def quote_str(text: str) -> str:
    """``text`` as a YAML double-quoted scalar."""
    if _SAFE.fullmatch(text):
        return f'"{text}"'
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _quote_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:  # YAML 1.1 (PyYAML) needs a dot to read a float
        mantissa += ".0"
    return mantissa + ("e" + exponent if exponent else "")


def _entry(key: str, value: Any) -> str:
    quoted = quote_str(key)
    # YAML limits implicit keys to 1024 characters (YAML 1.2 §7.4.2); longer ones are explicit.
    return f"{quoted}: {quote(value)}" if len(quoted) < 1000 else f"? {quoted} : {quote(value)}"


def quote(value: Any) -> str:
    """Any plain value (``None``, bool, int, float, str, list, dict) as one YAML flow value.

    Raises:
        TypeError: for any other type (templates must not pass objects through).
    """
    if isinstance(value, str):
        return quote_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _quote_float(value)
    if isinstance(value, dict):
        return "{" + ", ".join(_entry(str(k), v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(quote(v) for v in value) + "]"
    raise TypeError(f"cannot quote a {type(value).__name__} into YAML")
