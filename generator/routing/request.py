"""An HTTP request as an Envoy proxy sees it: the input of the spec's conditions
(:mod:`generator.routing.conditions`) and of Istio's matching (:mod:`generator.routing.simulate`).

Its own module so that both can use it without importing each other.

Istio turns on Envoy's path normalisation (istio/istio
``pilot/pkg/networking/core/listener_builder.go``: ``meshConfig.pathNormalization`` ``BASE``,
the default, sets the HTTP connection manager's ``normalize_path``), so routes are matched
on the normalised path: :func:`normalize_path` does what Envoy does, and a :class:`Request`
always holds the normalised path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char.isascii() and (char.isalnum() or char in "-._~") else match.group(0)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: ``/a/b/../c/./d`` -> ``/a/c/d``."""
    buf, out = path, []
    while buf:
        if buf.startswith("../"):
            buf = buf[3:]
        elif buf.startswith("./"):
            buf = buf[2:]
        elif buf.startswith("/./"):
            buf = buf[2:]
        elif buf == "/.":
            buf = "/"
        elif buf.startswith("/../") or buf == "/..":
            buf = "/" + buf[4:] if buf.startswith("/../") else "/"
            if out:
                out.pop()
        elif buf in (".", ".."):
            buf = ""
        else:
            end = buf.find("/", 1 if buf.startswith("/") else 0)
            end = len(buf) if end < 0 else end
            out.append(buf[:end])
            buf = buf[end:]
    return "".join(out)


def normalize_path(path: str) -> str:
    """The path as Envoy routes it with ``normalize_path`` on (Istio's default).

    Backslashes become ``/``; percent-encoded unreserved characters (RFC 3986: letters,
    digits, ``-._~``) are decoded, other escapes kept as written; dot segments are removed
    (RFC 3986 section 5.2.4). ``/x/../static`` -> ``/static``, ``/%73tatic`` -> ``/static``,
    ``/a%2Fb`` stays. Matches what Envoy 1.40 does (tests/test_envoy.py checks it).
    """
    if "%" not in path and "\\" not in path and "/." not in path and not path.startswith("."):
        return path or "/"  # nothing to decode, no dot segment: as it is
    path = _UNRESERVED.sub(_decode_unreserved, path.replace("\\", "/"))
    return remove_dot_segments(path) or "/"


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """A request target ``/path?a=1&b=2`` as ``(path, {parameter: value})``.

    A parameter given twice keeps its **first** value, as Envoy's query parameter matching
    does; values are not percent-decoded (Envoy matches them as sent). A ``#fragment`` is
    dropped.
    """
    target = target.partition("#")[0]
    path, _, query = target.partition("?")
    params: dict[str, str] = {}
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            params.setdefault(key, value)
    return path or "/", params


@dataclass(frozen=True)
class Request:
    """One HTTP request as a proxy sees it.

    Attributes:
        headers: header name -> value; names are case-insensitive (stored lower-case).
        query: query parameter -> value.
        uri: the path, without the query string; normalised as Envoy does (:func:`normalize_path`).
        target: the path as sent, before normalisation (for display), or ``None``.
        method, authority, scheme: the ``:method``, ``:authority`` and ``:scheme`` pseudo-headers.
        port: the port the request was sent to.
        source_labels: labels of the calling workload (of the gateway's pod at a gateway).
        source_namespace: namespace of the calling workload.
        gateway: ``"mesh"`` for a sidecar, ``"<namespace>/<name>"`` for an Istio Gateway.
    """

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    uri: str = "/"
    method: str = "GET"
    authority: str = "example"
    scheme: str = "http"
    port: int = 80
    source_labels: dict[str, str] = field(default_factory=dict)
    source_namespace: str = "default"
    gateway: str = "mesh"
    target: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})
        normal = normalize_path(self.uri)
        if normal != self.uri:
            if self.target is None:
                object.__setattr__(self, "target", self.uri)
            object.__setattr__(self, "uri", normal)
