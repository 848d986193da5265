"""An HTTP request as an Envoy proxy sees it: the input of the spec's conditions
(:mod:`generator.routing.conditions`) and of Istio's matching (:mod:`generator.routing.simulate`).

Its own module so that both can use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """One HTTP request as a proxy sees it.

    Attributes:
        headers: header name -> value; names are case-insensitive (stored lower-case).
        query: query parameter -> value.
        uri: the path, without the query string.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})
