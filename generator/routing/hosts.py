"""Kubernetes Service hosts as Istio names them. Pure.

Istio's registry names a Kubernetes Service ``<name>.<namespace>.svc.<domain>`` (istiod's
Kubernetes controller, ``kube.ServiceHostname``; the domain is the mesh's ``domainSuffix``,
``cluster.local`` unless configured). A host in a VirtualService or DestinationRule is that
Service only when written so: istiod completes names without dots alone
(``ResolveShortnameToFQDN``, ``pilot/pkg/model/config.go``), so ``reviews.books`` and
``reviews.books.svc`` are other hosts, which no Service answers to.
"""

from __future__ import annotations


def kube_service(host: str) -> tuple[str, str] | None:
    """``(name, namespace)`` of a Kubernetes Service host ``<name>.<namespace>.svc.<domain>``
    (one trailing dot allowed: the absolute form of the same name), else ``None``: a short name,
    ``name.namespace``, ``name.namespace.svc`` without its domain, an external name, a wildcard.

    Every module that tells a Service's host from another reads it here: the gateway-api
    target's backendRefs, ``explain``'s sidecar domains and the cross-object analysis.
    """
    parts = host.removesuffix(".").split(".")
    if len(parts) < 4 or parts[2] != "svc" or not all(parts) or "*" in host:
        return None
    return parts[0], parts[1]
