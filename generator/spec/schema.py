"""JSON Schema validation of specs, with places and "did you mean" hints.

The schemas in ``schemas/`` are the single source of truth for which fields exist (JSON Schema
2020-12, usable by editors through a ``# yaml-language-server: $schema=`` line). Every object
is closed (``additionalProperties: false``), so an unknown or misspelt field is an error
pointing at the key, with the closest known field as a hint.
"""

from __future__ import annotations

import ast
import collections
import copy
import difflib
import functools
import re
from typing import Any, Callable, Iterator

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError

from generator import resources
from generator.errors import Place, SpecError, as_yaml

PlaceOf = Callable[..., Place]


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A cached validator for the built-in schema file ``name``."""
    schema = resources.schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


#: After this many validations against one schema in a process, valid documents are first
#: checked by a compiled validator (fastjsonschema: ~20x faster per document, ~0.06 s to
#: compile ``app.schema.json``); only a document it rejects goes through jsonschema, which
#: explains the errors.
FAST_AFTER = 200
_calls: collections.Counter[str] = collections.Counter()


@functools.cache
def _compiled(name: str) -> Callable[[Any], Any]:
    """fastjsonschema's validator of the built-in schema ``name``: it says only whether a
    document is valid (no detailed exceptions: a quarter of the code to compile, 0.06 s
    rather than 0.26 s for ``app.schema.json``)."""
    return fastjsonschema.compile(_const_as_enum(resources.schema(name)), detailed_exceptions=False)


#: Keywords whose value maps names to schemas, and those whose value is a schema or a list of them.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SUBSCHEMAS = frozenset({"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                         "unevaluatedProperties", "unevaluatedItems", "additionalItems", "allOf", "anyOf", "oneOf",
                         "prefixItems"})


def _const_as_enum(schema: Any) -> Any:
    """``schema`` with every ``const: X`` written ``enum: [X]``, which JSON Schema defines as
    the same (2020-12 validation, 6.1.3; beside an ``enum`` of its own, as an ``allOf`` item):
    fastjsonschema 2.x fails to compile ``const`` without detailed exceptions."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _const_as_enum(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMAS:
            out[key] = [_const_as_enum(sub) for sub in value] if isinstance(value, list) else _const_as_enum(value)
        else:
            out[key] = value
    if "const" in schema:
        if "enum" in out:
            out["allOf"] = [*out.get("allOf", []), {"enum": [schema["const"]]}]
        else:
            out["enum"] = [schema["const"]]
    return out


def validate(data: Any, name: str, place: PlaceOf, key_place: PlaceOf | None = None) -> list[SpecError]:
    """Validate ``data`` against the built-in schema ``name``.

    Args:
        data: plain value loaded from YAML.
        name: schema file name, e.g. ``"app.schema.json"``.
        place: ``place(*keys) -> Place`` of the value at a key path.
        key_place: ``key_place(*keys) -> Place`` of a mapping key (for unknown fields);
            defaults to ``place``.

    Returns:
        One :class:`SpecError` per problem (empty when valid), in document order.
    """
    key_place = key_place or place
    _calls[name] += 1
    if _calls[name] > FAST_AFTER:
        try:
            _compiled(name)(data)
            return []
        except fastjsonschema.JsonSchemaValueException:
            pass  # invalid: let jsonschema find and explain every error
    errors: list[SpecError] = []
    check = validator(name)
    for error in check.iter_errors(data):
        errors.extend(_convert(error, place, key_place, check.schema))
    return errors


def _subschema(root: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    """The schema of the value at ``path`` under ``root``, following ``properties``, ``items``
    and local ``$ref`` only (empty when it cannot tell)."""
    node: Any = root
    for part in (*path, None):
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/$defs/"):
            node = root.get("$defs", {}).get(node["$ref"][len("#/$defs/"):], {})
        if part is None or not isinstance(node, dict):
            break
        node = node.get("items") if isinstance(part, int) else (node.get("properties") or {}).get(part)
    return node if isinstance(node, dict) else {}


def _indented_into(path: tuple[Any, ...], key: Any, instance: dict[str, Any], root: dict[str, Any] | None,
                   place: Place) -> SpecError | None:
    """An unknown field of a list item (``spec.routes[2]``) that is a field of the mapping
    holding the list (``spec``): a block indented into the list's last item."""
    if root is None or len(path) < 2 or not isinstance(path[-1], int) or not isinstance(path[-2], str):
        return None
    holder = _subschema(root, path[:-2])
    if key not in (holder.get("properties") or {}):
        return None
    items = path[-2]
    item = f"{items.removesuffix('s')} {as_yaml(instance['name'])}" if isinstance(instance.get("name"), str) else \
        f"item {path[-1] + 1} of `{items}`"
    return SpecError(f"`{key}` is indented into {item}; move it to the level of `{items}`", place=place,
                     hint=f"indent `{key}:` as far as `{items}:`, and its contents under it")


def accepted(data: Any, name: str) -> tuple[Any, set[tuple[Any, ...]]]:
    """What of an invalid ``data`` the built-in schema ``name`` accepts, for checks that look
    past the schema errors (so one run shows those and the errors of the well-formed parts).

    Returns:
        ``(pruned, refused)``: ``data`` without the fields the schema does not know (a copy
        when there are any), and the key paths of the values the schema refuses (a missing
        required field is refused at the mapping that lacks it). A subtree is well-formed when
        no refused path starts with its key path.
    """
    unknown: list[tuple[Any, ...]] = []
    refused: set[tuple[Any, ...]] = set()
    for error in validator(name).iter_errors(data):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            if isinstance(error.schema.get("additionalProperties"), dict) or error.schema.get("patternProperties"):
                refused.add(path)
                continue
            unknown.extend((*path, key) for key in error.instance if key not in known)
        else:
            refused.add(path)
    if not unknown:
        return data, refused
    pruned = copy.deepcopy(data)
    for *parent, key in unknown:
        holder = pruned
        for part in parent:
            holder = holder[part]
        holder.pop(key, None)
    return pruned, refused


def well_formed(refused: set[tuple[Any, ...]], *keys: Any) -> bool:
    """Whether no path of ``refused`` (see :func:`accepted`) lies at or under ``keys``."""
    return not any(path[:len(keys)] == keys for path in refused)


def _convert(error: ValidationError, place: PlaceOf, key_place: PlaceOf,
             root: dict[str, Any] | None = None) -> Iterator[SpecError]:
    path = tuple(error.absolute_path)
    where = dotted(path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        for key in error.instance:
            if key in known:
                continue
            indented = _indented_into(path, key, error.instance, root, key_place(*path, key))
            if indented is not None:
                yield indented
                continue
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {as_yaml(close[0])}?" if close else (
                f"known fields: {', '.join(sorted(known))}" if known else None)
            yield SpecError(f"unknown field {as_yaml(key)}{' in ' + where if where else ''}",
                            place=key_place(*path, key), hint=hint)
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        # report the errors of the alternative that got furthest into the value
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            branch = deepest.relative_schema_path[0]
            for sub in error.context:
                if sub.relative_schema_path[0] == branch:
                    yield from _convert(sub, place, key_place, root)
            return
    if error.validator == "required":
        yield SpecError(f"{yaml_message(error)}{' in ' + where if where else ''}", place=place(*path))
        return
    if error.validator == "pattern" and isinstance(error.instance, str):
        if error.schema.get("format") == "date-time":
            yield SpecError(f"{where}: {as_yaml(error.instance)} is not a time", place=place(*path),
                            hint="write an RFC 3339 time such as 2026-01-02T03:04:05Z")
            return
        message, hint = _pattern_problem(error.instance, error.schema["pattern"], where)
        yield SpecError(f"{where or 'value'}: {message}", place=place(*path), hint=hint)
        return
    if error.validator == "const":
        yield SpecError(f"{where}: expected {as_yaml(error.validator_value)}, found {as_yaml(error.instance)}", place=place(*path))
        return
    yield SpecError(f"{where or 'document'}: {yaml_message(error)}", place=place(*path))


#: JSON Schema's types in the words of YAML (YAML 1.2 §10: mapping, sequence, scalars).
TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
              "number": "a number", "boolean": "true or false", "null": "null"}


def yaml_message(error: ValidationError) -> str:
    """jsonschema's message for ``error`` in the words of the YAML the value came from:
    ``null is not a mapping`` rather than ``None is not of type 'object'``; the value as YAML
    writes it (:func:`generator.errors.as_yaml`), never as Python's ``repr``."""
    value = as_yaml(error.instance)
    if error.validator in ("oneOf", "anyOf") and error.context and all(
            e.validator == "type" and e.absolute_path == error.absolute_path for e in error.context):
        types = [t for e in error.context for t in (e.validator_value if isinstance(e.validator_value, list)
                                                     else [e.validator_value])]
        return f"{value} is not {' or '.join(TYPE_WORDS.get(t, t) for t in dict.fromkeys(types))}"
    if error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{value} is not {' or '.join(TYPE_WORDS.get(t, t) for t in types)}"
    if error.validator == "enum":
        return f"{value} is not one of {', '.join(as_yaml(v) for v in error.validator_value)}"
    if error.validator == "required" and error.message.endswith(" is a required property"):
        try:  # jsonschema names the one missing field as Python writes it
            field = ast.literal_eval(error.message.removesuffix(" is a required property"))
        except (ValueError, SyntaxError):
            field = None
        if isinstance(field, str):
            return f"{as_yaml(field)} is a required field"
    text = error.message
    shown = repr(error.instance)
    if text.startswith(shown):
        text = value + text[len(shown):]
    return text


_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_UNITS = re.compile(r"\(((?:[a-zµ]+\|)+[a-zµ]+)\)\)\+\$$")


def dns1123_label(text: str) -> str | None:
    """A valid DNS-1123 label (Kubernetes object name) close to ``text``: lower-cased, every run
    of other characters made one ``-``, at most 63 characters; ``None`` when nothing is left."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].rstrip("-")
    return label or None


def is_dns1123_label(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 label: ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63 characters."""
    return len(text) <= 63 and _LABEL.fullmatch(text) is not None


def _pattern_problem(value: str, pattern: str, where: str) -> tuple[str, str | None]:
    """``(message, hint)`` for a string that fails a schema ``pattern``, in words, not the regex."""
    if pattern == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$":
        suggestion = dns1123_label(value)
        hint = f"use {as_yaml(suggestion)}" if suggestion else "use e.g. 'my-app'"
        if where == "metadata.name" and suggestion:
            hint += f", and name the file {suggestion}.yaml to match"
        return (f"{as_yaml(value)} is not a DNS-1123 label: lower-case letters, digits and '-', starting and ending "
                "with a letter or digit"), hint
    if pattern.startswith("^(\\*\\.)?[a-z0-9]") or pattern.startswith("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\."):
        wildcard = pattern.startswith("^(\\*\\.)?")
        suggestion = ".".join(filter(None, (dns1123_label(p) for p in value.split(".")))) or None
        if wildcard and value.startswith("*.") and suggestion:
            suggestion = "*." + suggestion
        return (f"{as_yaml(value)} is not a DNS name: dot-separated labels of lower-case letters, digits and '-'"
                + (", optionally after '*.'" if wildcard else "")), (f"use {as_yaml(suggestion)}" if suggestion else None)
    if pattern.startswith("^[0-9]{4}-(0[1-9]"):
        return f"{as_yaml(value)} is not a time", "write an RFC 3339 time such as 2026-01-02T03:04:05Z"
    units = _UNITS.search(pattern)
    if units:
        names = units.group(1).split("|")
        return (f"{as_yaml(value)} is not a duration",
                f"write a number and a unit, e.g. 500ms, 2s or 1m30s; units: {', '.join(names)}")
    if pattern == "^/":
        return f"{as_yaml(value)} does not start with '/'", f"write it as '/{value}'"
    if pattern == "^https?://":
        return f"{as_yaml(value)} is not an http:// or https:// URL", f"write e.g. 'http://{value}'"
    if pattern == "^[A-Za-z_][A-Za-z0-9_]*$":
        return f"{as_yaml(value)} is not a name of letters, digits and '_' (not starting with a digit)", None
    return f"{as_yaml(value)} does not match the pattern {as_yaml(pattern)}", None


def dotted(path: tuple[Any, ...]) -> str:
    """``("spec", "routes", 0, "to")`` as ``spec.routes[0].to``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
