"""Load YAML specs into plain Python values while remembering where every node came from.

Specs are parsed by libyaml (PyYAML's ``CSafeLoader`` events) and composed into nodes by
:func:`compose`, whose nodes carry the line and column of their first character, and then
turned into plain ``dict``/``list``/scalars by our own walk. The walk is where the checks
that a plain ``yaml.safe_load`` would skip happen:

* duplicate keys (YAML 1.2 forbids them; PyYAML keeps the last one silently);
* aliases that expand beyond :data:`MAX_NODES` nodes ("billion laughs") or refer to themselves;
* merge keys (``<<``), which are a YAML 1.1 extension meshgen does not accept;
* several documents in one file, or a document that is not a mapping;
* explicit tags (``!!binary``, ``!!timestamp``, ``!!python/object``, ``!foo``, ...): a spec
  holds plain data only, so any tag but the standard ``!!str``, ``!!int``, ``!!float``,
  ``!!bool``, ``!!null``, ``!!seq`` and ``!!map`` is a placed error; those are read as their
  type (``!!str 5`` is the text ``"5"``), and a value that does not read as its tag
  (``!!bool yes environment``, ``!!int ten``) is a placed error too;
* the input limits :data:`MAX_FILE_BYTES`, :data:`MAX_DEPTH`, :data:`MAX_NODES` and
  :data:`MAX_STRING`, each a placed error when passed.

The limits are checked before anything recurses: the file's size before it is read, then
depth, node count and string length while libyaml's event stream is composed into nodes by
:func:`compose`, a loop with its own stack rather than libyaml's recursive composer (which
crashes the process with a C stack overflow on ``[[[[...]]]]`` 100,000 deep). The walk from
nodes to values recurses, but only as deep as :data:`MAX_DEPTH`, aliases expanded.

The loop costs 1.4x libyaml's composer (0.18 against 0.12 ms per App in ``bench/render.py``,
which prints both). ruamel.yaml's round-trip loader also keeps positions, but it is nine
times slower than the whole load (4.3 ms against 0.49 ms per App), and meshgen never
rewrites a human-owned file, so no comment has to survive a load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from generator.errors import Place, SpecError, as_yaml

#: Largest spec file, in bytes.
MAX_FILE_BYTES = 1024 * 1024
#: Deepest nesting of lists and mappings in one document (the top mapping is depth 1),
#: aliases expanded. The bundled specs nest 8 deep at most.
MAX_DEPTH = 64
#: Largest number of nodes one document may expand to, aliases counted at each use.
MAX_NODES = 100_000
#: Longest scalar (a string, number, key), in characters.
MAX_STRING = 64 * 1024

_SCALAR = yaml.constructor.SafeConstructor()
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}
_TYPE_NAMES = {"tag:yaml.org,2002:int": "an integer", "tag:yaml.org,2002:float": "a number",
               "tag:yaml.org,2002:bool": "a boolean", "tag:yaml.org,2002:null": "null"}
_RESOLVER = yaml.resolver.Resolver()
#: ``(value, implicit) -> tag`` of plain scalars resolved before (PyYAML's resolver is a function
#: of them; keys, names and small values repeat across a fleet's specs). Values up to
#: :data:`_RESOLVED_LENGTH` characters are kept, and at most :data:`_RESOLVED_MAX` of them.
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}
_RESOLVED_LENGTH = 64
_RESOLVED_MAX = 1 << 16

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

    def __init__(self, path: str, data: Any, values: dict[KeyPath, yaml.Mark],
                 keys: dict[KeyPath, yaml.Mark], quoted: set[KeyPath] | None = None) -> None:
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
        mark = self._keys.get(keys)
        if mark is not None:
            return _mark(self.path, mark)
        return self.place(*keys)

    def _lookup(self, table: dict[KeyPath, yaml.Mark], keys: KeyPath) -> Place:
        keys = tuple(keys)
        while keys not in table and keys:
            keys = keys[:-1]
        mark = table.get(keys)
        return Place(self.path, 1, 1) if mark is None else _mark(self.path, mark)


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
            unsupported tags, input limits passed, several documents, or a top level that is
            not a mapping -- each with its place.
    """
    shown = shown_as or str(path)
    if text is None:
        _check_size(path.stat().st_size, shown)
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecError(f"file is not valid UTF-8: byte 0x{raw[e.start]:02x} cannot be decoded",
                            place=byte_place(raw, e.start, shown),
                            hint="save the file as UTF-8 (most editors: the encoding in the status bar)") from e
    elif len(text) * 4 > MAX_FILE_BYTES:  # UTF-8 takes 1 to 4 bytes a character
        _check_size(len(text.encode("utf-8", "surrogatepass")), shown)
    try:
        nodes = compose(text, shown)
    except yaml.MarkedYAMLError as e:
        raise _syntax_error(e, text, shown) from e
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


def load_documents(text: str, shown: str) -> list[Document]:
    """Every document of a multi-document YAML text (Kubernetes manifests), with places, empty
    documents left out; the same checks as :func:`load_document` but for the count of documents
    and a top level that is not a mapping.

    Raises:
        yaml.MarkedYAMLError: a syntax error (libyaml's mark).
        SpecError: duplicate keys, merge keys, unsupported tags, input limits passed, placed.
    """
    out = []
    for node in compose(text, shown):
        walker = _Walker(shown)
        data = walker.value(node, ())
        if data is not None:
            out.append(Document(shown, data, walker.values, walker.keys, walker.quoted))
    return out


def byte_place(raw: bytes, offset: int, shown: str) -> Place:
    """Place of the byte at ``offset`` of ``raw``: its line, and its column counted in the
    characters of that line before it (bytes that do not decode count one each)."""
    start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[start:offset].decode("utf-8", "replace")) + 1
    return Place(shown, raw.count(b"\n", 0, offset) + 1, column)


#: A line git writes around a conflict (git-merge-file(1): ``<<<<<<<``, ``|||||||`` with
#: diff3, ``=======``, ``>>>>>>>``), seven characters then a space and a label or the line end.
_CONFLICT_MARKER = re.compile(r"^(?:<{7}|\|{7}|>{7})(?: [^\n]*)?$|^={7}$", re.MULTILINE)

_INDENTATION_PROBLEMS = ("did not find expected key", "did not find expected '-' indicator",
                         "mapping values are not allowed", "expected <block end>", "could not find expected ':'")


def _syntax_error(e: yaml.MarkedYAMLError, text: str, shown: str) -> SpecError:
    """libyaml's syntax error in words a newcomer can act on: a tab is named as a tab, an
    indentation problem gets a hint comparing the line's indentation with the line above."""
    conflict = _CONFLICT_MARKER.search(text)
    if conflict:  # a merge, rebase or cherry-pick left its markers: say so, not where YAML broke
        line = text.count("\n", 0, conflict.start()) + 1
        return SpecError(f"unresolved merge conflict marker {conflict.group(0).strip()!r}", place=Place(shown, line, 1),
                         hint="resolve the conflict: keep the lines you want, delete the marker lines (<<<<<<<, "
                              "=======, >>>>>>>), then git add the file and commit (or abort the merge or rebase)")
    mark = e.problem_mark or e.context_mark
    if not mark:
        return SpecError(f"invalid YAML: {e.problem or e.context or 'invalid YAML'}", place=Place(shown))
    place = Place(shown, mark.line + 1, mark.column + 1)
    problem = e.problem or e.context or "invalid YAML"
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "tab" in problem or line[mark.column:mark.column + 1] == "\t" or "\t" in line[:len(line) - len(line.lstrip())]:
        column = line.index("\t") + 1 if "\t" in line else mark.column + 1
        return SpecError("a tab character: YAML indents with spaces only, never tabs",
                         place=Place(shown, mark.line + 1, column),
                         hint=f"replace the tab on line {mark.line + 1} with spaces; set your editor to insert "
                              "spaces in .yaml files")
    if any(p in problem for p in _INDENTATION_PROBLEMS):
        above = next((i for i in range(min(mark.line, len(lines)) - 1, -1, -1)
                      if lines[i].strip() and not lines[i].lstrip().startswith("#")), None)
        def indent(i: int) -> int:
            return len(lines[i]) - len(lines[i].lstrip(" "))
        if above is not None and mark.line < len(lines):
            keys = _key_column(lines[above])
            where = (f"line {above + 1} above it {indent(above)}" if keys == indent(above) else
                     f"the keys of line {above + 1} above it {keys}, after `- `")
            hint = (f"check the indentation: line {mark.line + 1} is indented {indent(mark.line)} spaces, "
                    f"{where}; the keys of one mapping start in the same "
                    "column, a nested value further right than its key")
        else:
            hint = "check the indentation: the keys of one mapping start in the same column"
        if "mapping values are not allowed" in problem:
            hint += "; quote a value that contains ': '"
        return SpecError(f"invalid YAML: {problem}", place=place, hint=hint)
    return SpecError(f"invalid YAML: {problem}", place=place)


def _key_column(line: str) -> int:
    """0-based column where a line's content starts after its indentation and any ``- ``
    sequence indicators: where the keys of a mapping that starts on that line are."""
    column = len(line) - len(line.lstrip(" "))
    while line[column:column + 2] == "- " or line[column:] == "-":
        column += 1
        while line[column:column + 1] == " ":
            column += 1
    return column


def _check_size(size: int, shown: str) -> None:
    if size > MAX_FILE_BYTES:
        raise SpecError(f"file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES // 1024} KiB)",
                        place=Place(shown, 1, 1), hint="split it: one spec per file")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _tag_error(tag: str, mark: yaml.Mark, shown: str) -> SpecError:
    return SpecError(f"tag {_short_tag(tag)} is not supported: a spec holds plain strings, numbers, booleans, "
                     "null, lists and mappings", place=Place(shown, mark.line + 1, mark.column + 1),
                     hint="remove the tag; quote the value to keep it as text")


def compose(text: str, shown: str = "<string>") -> list[yaml.Node]:
    """Compose every document of ``text`` into PyYAML nodes, without recursion.

    libyaml parses ``text`` into events; this loop builds the node graph with a stack of its
    own, resolving implicit tags as PyYAML's composer does (YAML 1.1 rules), and stops at
    the first input limit passed or explicit tag that is not plain data.

    Returns:
        One root node per document.

    Raises:
        yaml.MarkedYAMLError: a syntax error, an undefined alias (libyaml's marks).
        SpecError: :data:`MAX_DEPTH`, :data:`MAX_NODES` or :data:`MAX_STRING` passed, a
            duplicate anchor, or an unsupported tag, placed at the node.
    """
    loader = yaml.CSafeLoader(text)
    docs: list[yaml.Node] = []
    anchors: dict[str, yaml.Node] = {}
    stack: list[list[Any]] = []  # [collection node, pending mapping key or _NO_KEY]
    count = 0
    resolve, resolved = _RESOLVER.resolve, _RESOLVED
    try:
        while True:
            event = loader.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                value = event.value
                if len(value) > MAX_STRING:
                    raise SpecError(f"a value of {len(value):,} characters; the limit is {MAX_STRING:,}",
                                    place=_mark(shown, event.start_mark), hint="shorten it")
                tag = event.tag
                if tag is None or tag == "!":
                    key = (value, event.implicit)
                    tag = resolved.get(key)
                    if tag is None:
                        tag = resolve(yaml.ScalarNode, value, event.implicit)
                        if len(value) <= _RESOLVED_LENGTH and len(resolved) < _RESOLVED_MAX:
                            resolved[key] = tag
                elif tag not in _PLAIN_TAGS:
                    raise _tag_error(tag, event.start_mark, shown)
                node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)
            elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                sequence = kind is yaml.SequenceStartEvent
                node_class = yaml.SequenceNode if sequence else yaml.MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(node_class, None, event.implicit)
                elif tag not in _COLLECTION_TAGS:
                    raise _tag_error(tag, event.start_mark, shown)
                if len(stack) >= MAX_DEPTH:
                    raise SpecError(f"lists and mappings nest more than {MAX_DEPTH} deep",
                                    place=_mark(shown, event.start_mark), hint="flatten the structure")
                node = node_class(tag, [], event.start_mark, None, flow_style=event.flow_style)
                count = _counted(count, node, shown)
                _anchor(anchors, event.anchor, node, shown)
                stack.append([node, _NO_KEY])
                continue
            elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                node = stack.pop()[0]
                node.end_mark = event.end_mark
                _attach(stack, docs, node)
                continue
            elif kind is yaml.AliasEvent:
                if event.anchor not in anchors:
                    raise yaml.composer.ComposerError(None, None, f"found undefined alias *{event.anchor}",
                                                      event.start_mark)
                _attach(stack, docs, anchors[event.anchor])
                continue
            elif kind is yaml.DocumentStartEvent:
                anchors = {}
                continue
            elif kind is yaml.StreamEndEvent:
                return docs
            else:  # stream start, document end
                continue
            count = _counted(count, node, shown)
            _anchor(anchors, event.anchor, node, shown)
            _attach(stack, docs, node)
    except yaml.MarkedYAMLError as e:
        if "nesting depth" in (e.problem or "") and e.problem_mark:  # libyaml's own limit, met first
            raise SpecError(f"lists and mappings nest more than {MAX_DEPTH} deep",
                            place=_mark(shown, e.problem_mark), hint="flatten the structure") from e
        raise
    finally:
        loader.dispose()


_NO_KEY = object()


def _counted(count: int, node: yaml.Node, shown: str) -> int:
    if count >= MAX_NODES:
        raise SpecError(f"more than {MAX_NODES:,} values in one file", place=_place(shown, node),
                        hint="split the file")
    return count + 1


def _anchor(anchors: dict[str, yaml.Node], anchor: str | None, node: yaml.Node, shown: str) -> None:
    if anchor is None:
        return
    if anchor in anchors:
        first = anchors[anchor].start_mark
        raise SpecError(f"duplicate anchor &{anchor} (first defined at line {first.line + 1})",
                        place=_place(shown, node), hint="rename one of the two")
    anchors[anchor] = node


def _attach(stack: list[list[Any]], docs: list[yaml.Node], node: yaml.Node) -> None:
    if not stack:
        docs.append(node)
        return
    top = stack[-1]
    parent = top[0]
    if isinstance(parent, yaml.SequenceNode):
        parent.value.append(node)
    elif top[1] is _NO_KEY:
        top[1] = node
    else:
        parent.value.append((top[1], node))
        top[1] = _NO_KEY


def _mark(path: str, mark: yaml.Mark) -> Place:
    return Place(path, mark.line + 1, mark.column + 1)


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
        self.values: dict[KeyPath, yaml.Mark] = {}  # where each node starts (libyaml's 0-based marks)
        self.keys: dict[KeyPath, yaml.Mark] = {}
        self.count = 0
        self.open: set[int] = set()
        self.quoted: set[KeyPath] = set()

    def value(self, node: yaml.Node, at: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError(f"document expands to more than {MAX_NODES} nodes (anchors and aliases "
                            "are expanded at each use)", place=_place(self.path, node),
                            hint="write the values out, or use fewer nested aliases")
        self.values[at] = node.start_mark
        if isinstance(node, yaml.ScalarNode):
            if node.style in ('"', "'"):
                self.quoted.add(at)
            if node.tag in _PLAIN_TAGS:
                return self.scalar(node)
            if node.tag == _MERGE_TAG:
                raise SpecError("merge keys (<<) are not supported", place=_place(self.path, node),
                                hint="write the merged keys out")
            return node.value  # timestamps and other tags stay text, as written
        if len(at) >= MAX_DEPTH:  # aliases can nest deeper than the text
            raise SpecError(f"lists and mappings nest more than {MAX_DEPTH} deep (aliases expanded)",
                            place=_place(self.path, node), hint="flatten the structure, or use fewer nested aliases")
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
                key = self.scalar(key_node) if key_node.tag in _PLAIN_TAGS else key_node.value
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    key = key_node.value
                if key in out:
                    first = self.keys[(*at, key)]
                    raise SpecError(f"duplicate key {as_yaml(key)} (first defined at line {first.line + 1})",
                                    place=_place(self.path, key_node), hint="remove one of the two")
                self.keys[(*at, key)] = key_node.start_mark
                out[key] = self.value(value_node, (*at, key))
            return out
        finally:
            self.open.discard(id(node))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        """A str/int/float/bool/null scalar's value; a placed error when its text does not
        read as its (explicit) tag, or as a number Python can hold."""
        try:
            return _scalar(node)
        except (ValueError, KeyError, TypeError, OverflowError) as e:
            text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            implicit = not node.style and _RESOLVER.resolve(yaml.ScalarNode, node.value, (True, False)) == node.tag
            raise SpecError(f"{as_yaml(text)} does not read as {_TYPE_NAMES.get(node.tag, _short_tag(node.tag))}",
                            place=_place(self.path, node),
                            hint="quote it to keep it as text" if implicit else
                            f"remove the tag {_short_tag(node.tag)}, or quote the value to keep it as text") from e
