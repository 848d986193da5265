"""Load YAML specs into plain Python values while remembering where every node came from.

Specs are composed with PyYAML's libyaml-backed composer (``yaml.compose`` with
``CSafeLoader``), whose nodes carry the line and column of their first character, and then
turned into plain ``dict``/``list``/scalars by our own walk. The walk is where the checks
that a plain ``yaml.safe_load`` would skip happen:

* duplicate keys (YAML 1.2 forbids them; PyYAML keeps the last one silently);
* aliases that expand beyond :data:`MAX_NODES` nodes ("billion laughs") or refer to themselves;
* merge keys (``<<``), which are a YAML 1.1 extension meshgen does not accept;
* several documents in one file, or a document that is not a mapping.

ruamel.yaml's round-trip loader also keeps positions, but it is more than ten times slower on
an App spec (4.2 ms against 0.23 ms in ``bench/render.py``, which prints both), and
meshgen never rewrites a human-owned file, so no comment has to survive a load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from generator.errors import Place, SpecError

#: Largest number of nodes one document may expand to, aliases counted at each use.
MAX_NODES = 100_000

_SCALAR = yaml.constructor.SafeConstructor()
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"

KeyPath = tuple[Any, ...]
_STR = "tag:yaml.org,2002:str"


def _scalar(node: yaml.ScalarNode) -> Any:
    """A plain scalar's value; the constructor is called directly so nothing is memoised."""
    if node.tag == _STR:
        return node.value
    return _SCALAR.yaml_constructors[node.tag](_SCALAR, node)


def parse_plain(text: str) -> Any:
    """Parse trusted YAML (a rendered template) into plain values, fast.

    For meshgen's own rendered output: libyaml composes, and a lean walk builds ``dict``,
    ``list`` and scalars (about 1.5x faster than ``yaml.load`` with ``CSafeLoader``). Tags
    other than str/int/float/bool/null raise ``yaml.YAMLError``.
    """

    def walk(node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _PLAIN_TAGS:
                raise yaml.YAMLError(f"unexpected tag {node.tag} at line {node.start_mark.line + 1}")
            return _scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [walk(item) for item in node.value]
        return {walk(k): walk(v) for k, v in node.value}

    node = yaml.compose(text, Loader=yaml.CSafeLoader)
    return None if node is None else walk(node)


class Document:
    """One YAML document: its plain value and the place of each node.

    Attributes:
        path: the file path as shown in messages (repository-relative when loaded from a repo).
        data: the document as plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``.
    """

    __slots__ = ("path", "data", "_values", "_keys", "_quoted")

    def __init__(self, path: str, data: Any, values: dict[KeyPath, tuple[int, int]],
                 keys: dict[KeyPath, tuple[int, int]], quoted: set[KeyPath] | None = None) -> None:
        self.path = path
        self.data = data
        self._values = values
        self._keys = keys
        self._quoted = quoted or set()

    def text_place(self, *keys: Any) -> Place:
        """Place of the first character of a string value's text (after an opening quote)."""
        place = self.place(*keys)
        return place.shifted(1) if tuple(keys) in self._quoted else place

    def place(self, *keys: Any) -> Place:
        """Place of the value at ``keys`` (e.g. ``"spec", "routes", 0, "to"``).

        Falls back to the nearest parent that exists, so a missing field points at the mapping
        that should hold it.
        """
        return self._lookup(self._values, keys)

    def key_place(self, *keys: Any) -> Place:
        """Place of the mapping key at ``keys`` (the value's place for list items)."""
        if keys in self._keys:
            line, col = self._keys[keys]
            return Place(self.path, line, col)
        return self.place(*keys)

    def _lookup(self, table: dict[KeyPath, tuple[int, int]], keys: KeyPath) -> Place:
        keys = tuple(keys)
        while keys not in table and keys:
            keys = keys[:-1]
        line, col = table.get(keys, (1, 1))
        return Place(self.path, line, col)


def load_document(path: Path, shown_as: str | None = None, *, text: str | None = None) -> Document:
    """Read one single-document YAML file.

    Args:
        path: file to read (ignored when ``text`` is given, except for messages).
        shown_as: the path used in places, e.g. ``apps/ratings.yaml``; default ``str(path)``.
        text: the file's content, when already read.

    Returns:
        The :class:`Document`; its ``data`` is a mapping.

    Raises:
        SpecError: syntax errors, duplicate keys, over-large alias expansion, merge keys,
            several documents, or a top level that is not a mapping -- each with its place.
    """
    shown = shown_as or str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise SpecError("file is not valid UTF-8", place=Place(shown, 1, 1)) from e
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.CSafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        place = Place(shown, mark.line + 1, mark.column + 1) if mark else Place(shown)
        problem = e.problem or e.context or "invalid YAML"
        raise SpecError(f"invalid YAML: {problem}", place=place) from e
    except yaml.YAMLError as e:  # reader errors (non-printable characters) carry no mark
        raise SpecError(f"invalid YAML: {e}", place=Place(shown, 1, 1)) from e
    if not nodes:
        raise SpecError("empty file: expected one YAML mapping", place=Place(shown, 1, 1),
                        hint="write the spec as a mapping starting with apiVersion and kind")
    if len(nodes) > 1:
        second = nodes[1].start_mark
        raise SpecError("several YAML documents in one file; meshgen expects one per file",
                        place=Place(shown, second.line + 1, second.column + 1),
                        hint="put each spec in its own file")
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        raise SpecError(f"expected a mapping at the top of the file, found a {_kind(root)}",
                        place=_place(shown, root))
    walker = _Walker(shown)
    data = walker.value(root, ())
    return Document(shown, data, walker.values, walker.keys, walker.quoted)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    if isinstance(node, yaml.ScalarNode):
        return "scalar" if node.value else "null value"
    return "mapping"


def _place(path: str, node: yaml.Node) -> Place:
    return Place(path, node.start_mark.line + 1, node.start_mark.column + 1)


class _Walker:
    """Turns a composed node graph into plain values, recording places and counting nodes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.values: dict[KeyPath, tuple[int, int]] = {}
        self.keys: dict[KeyPath, tuple[int, int]] = {}
        self.count = 0
        self.open: set[int] = set()
        self.quoted: set[KeyPath] = set()

    def value(self, node: yaml.Node, at: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError(f"document expands to more than {MAX_NODES} nodes (anchors and aliases "
                            "are expanded at each use)", place=_place(self.path, node),
                            hint="write the values out, or use fewer nested aliases")
        self.values[at] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            if node.style in ('"', "'"):
                self.quoted.add(at)
            if node.tag in _PLAIN_TAGS:
                return _scalar(node)
            if node.tag == _MERGE_TAG:
                raise SpecError("merge keys (<<) are not supported", place=_place(self.path, node),
                                hint="write the merged keys out")
            return node.value  # timestamps and other tags stay text, as written
        if id(node) in self.open:
            raise SpecError("an alias refers to the node that contains it",
                            place=_place(self.path, node), hint="remove the recursive alias")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.value(item, (*at, i)) for i, item in enumerate(node.value)]
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    raise SpecError("merge keys (<<) are not supported", place=_place(self.path, key_node),
                                    hint="write the merged keys out")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SpecError("mapping keys must be plain scalars", place=_place(self.path, key_node))
                key = _scalar(key_node) if key_node.tag in _PLAIN_TAGS else key_node.value
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    key = key_node.value
                if key in out:
                    first = self.keys[(*at, key)]
                    raise SpecError(f"duplicate key {key!r} (first defined at line {first[0]})",
                                    place=_place(self.path, key_node), hint="remove one of the two")
                self.keys[(*at, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.value(value_node, (*at, key))
            return out
        finally:
            self.open.discard(id(node))
