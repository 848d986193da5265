"""Istio YAML text -> :class:`IstioObject` values that remember where each node was written.

Accepts what people have at hand: several documents in one file (``---``), ``kind: List``
(``kubectl get -o yaml`` of many objects), and single objects as ``kubectl get -o yaml``
prints them (``status``, ``metadata.managedFields``, ``resourceVersion``, ... are ignored).
Positions come from :mod:`generator.spec.loader`, so every message is ``path:line:col``.
Pure: text in, values out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from generator.errors import Place, SpecError
from generator.spec import loader

#: The Istio API group read by ``meshgen import``.
GROUP = "networking.istio.io"
#: The versions of :data:`GROUP` Istio serves (v1 from Istio 1.22; v1beta1, v1alpha3 before).
VERSIONS = ("v1", "v1beta1", "v1alpha3")
#: The kinds ``meshgen import`` reads.
KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry")


@dataclass
class IstioObject:
    """One Istio object of an input file.

    Attributes:
        kind: ``VirtualService``, ``DestinationRule``, ``Gateway`` or ``ServiceEntry``.
        name, namespace: ``metadata.name`` and ``metadata.namespace`` (the ``--namespace``
            default when the object names none, as ``kubectl apply`` would).
        spec: the object's ``spec`` as plain values.
        doc: the document it was read from; ``at`` the key path of the object inside it
            (``()`` for a document, ``("items", 3)`` for an item of a ``List``).
        data: the whole object.
    """

    kind: str
    name: str
    namespace: str
    spec: dict[str, Any]
    doc: loader.Document
    at: tuple[Any, ...]
    data: dict[str, Any]

    @property
    def ref(self) -> str:
        """``Kind ns/name``, as messages name it."""
        return f"{self.kind} {self.namespace}/{self.name}"

    def place(self, *keys: Any) -> Place:
        """Place of the value at ``spec.<keys>`` (the nearest existing parent's when absent)."""
        return self.doc.place(*self.at, "spec", *keys)

    def key_place(self, *keys: Any) -> Place:
        """Place of the key at ``spec.<keys>``."""
        return self.doc.key_place(*self.at, "spec", *keys)


def read(text: str, shown: str, namespace: str = "default") -> tuple[list[IstioObject], list[SpecError]]:
    """The Istio networking objects of one file's text.

    Args:
        text: the file's content (YAML, one or several documents).
        shown: the file's path as messages show it.
        namespace: the namespace of objects whose ``metadata.namespace`` is missing.

    Returns:
        ``(objects, errors)``: objects in file order; an error for YAML that does not parse
        (then no objects), and for each document or item that is not a networking.istio.io
        object of :data:`KINDS` in :data:`VERSIONS` (other Kubernetes objects, such as the
        Deployments and Services of a sample, are skipped silently).
    """
    try:
        nodes = loader.compose(text, shown)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = Place(shown, mark.line + 1, mark.column + 1) if mark else Place(shown, 1, 1)
        return [], [SpecError(f"invalid YAML: {e.problem or e.context}", place=where)]
    except yaml.YAMLError as e:
        return [], [SpecError(f"invalid YAML: {e}", place=Place(shown, 1, 1))]
    except SpecError as e:
        return [], [e]
    objects: list[IstioObject] = []
    errors: list[SpecError] = []
    for node in nodes:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
            continue  # an empty document (a trailing ---)
        _prune(node)
        walker = loader._Walker(shown)
        try:
            data = walker.value(node, ())
        except SpecError as e:
            errors.append(e)
            continue
        doc = loader.Document(shown, data, walker.values, walker.keys, walker.quoted)
        if not isinstance(data, dict):
            errors.append(SpecError("expected a Kubernetes object (a mapping with apiVersion and kind)",
                                    place=doc.place()))
            continue
        if data.get("kind") == "List" or (str(data.get("kind", "")).endswith("List") and "items" in data):
            for i, item in enumerate(data.get("items") or []):
                _one(doc, ("items", i), item, namespace, objects, errors)
        else:
            _one(doc, (), data, namespace, objects, errors)
    return objects, errors


def _one(doc: loader.Document, at: tuple[Any, ...], data: Any, namespace: str,
         objects: list[IstioObject], errors: list[SpecError]) -> None:
    if not isinstance(data, dict):
        errors.append(SpecError("expected a Kubernetes object (a mapping with apiVersion and kind)",
                                place=doc.place(*at)))
        return
    api, kind = str(data.get("apiVersion", "")), data.get("kind")
    group, _, version = api.rpartition("/")
    if group != GROUP:
        return  # not Istio networking: a sample's Deployment, Service, ServiceAccount...
    if kind not in KINDS:
        errors.append(SpecError(f"{kind} is not imported: meshgen writes {', '.join(KINDS)}",
                                place=doc.place(*at, "kind"), hint="leave it out of the import"))
        return
    if version not in VERSIONS:
        errors.append(SpecError(f"apiVersion {api} is not one Istio serves; expected {GROUP}/"
                                f"{' or '.join(VERSIONS)}", place=doc.place(*at, "apiVersion")))
        return
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        errors.append(SpecError(f"{kind} without metadata.name", place=doc.place(*at, "metadata"),
                                hint="give the object a name"))
        return
    spec = data.get("spec")
    if not isinstance(spec, dict):
        errors.append(SpecError(f"{kind} {meta['name']} has no spec mapping", place=doc.place(*at, "spec")))
        return
    ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) and meta.get("namespace") else namespace
    objects.append(IstioObject(kind, meta["name"], ns, spec, doc, at, data))


#: What ``kubectl get -o yaml`` adds that an import never reads: left out before the nodes
#: are turned into values (managedFields alone is often most of an object's text).
_IGNORED = {"status"}
_IGNORED_META = {"managedFields", "resourceVersion", "uid", "generation", "creationTimestamp"}


def _prune(node: yaml.Node) -> None:
    """Drop the ignored keys of an object, and of each item of a List, in place."""
    if not isinstance(node, yaml.MappingNode):
        return
    keep = []
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name in _IGNORED:
            continue
        if name == "metadata" and isinstance(value, yaml.MappingNode):
            value.value = [(k, v) for k, v in value.value
                           if not (isinstance(k, yaml.ScalarNode) and k.value in _IGNORED_META)]
        if name == "items" and isinstance(value, yaml.SequenceNode):
            for item in value.value:
                _prune(item)
        keep.append((key, value))
    node.value = keep
