"""The ``x-kubernetes-validations`` CEL rules of Istio's and the Gateway API's CRDs, evaluated.

The API server checks an object against its CRD's OpenAPI schema *and* its CEL rules
(Kubernetes docs: "Validation rules", ``x-kubernetes-validations``); a JSON Schema validator
sees only the first. :func:`problems` walks the object beside its kind's schema
(``schemas/istio/*.json``, ``schemas/gateway-api/*.json``, both kept with their rules) and
evaluates every rule on the value at its node with cel-python (``celpy``), ``self`` bound to that
value, after filling in the schema's defaults as the API server does; a property named by a CEL
reserved word is ``__word__`` in a rule (``__namespace__``), as in Kubernetes. Transition rules (those reading ``oldSelf``) are left out: there is no old object.

The Kubernetes CEL library functions the vendored rules use beyond standard CEL (``isIP``,
``isCIDR``, ``ip``, ``cidr``, ``url``, ``isURL``, ``format``...) are not all in celpy: a rule
whose evaluation fails for that reason is reported by :func:`unevaluated`, never as a problem.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Iterator

import celpy
from celpy import celtypes

from generator import resources

#: ``apiVersion`` group -> schema directory under ``schemas/``.
GROUPS = {"networking.istio.io": "istio", "gateway.networking.k8s.io": "gateway-api"}


def _is_ip(value: Any) -> celtypes.BoolType:
    try:
        ipaddress.ip_address(str(value))
        return celtypes.BoolType(True)
    except ValueError:
        return celtypes.BoolType(False)


def _is_cidr(value: Any) -> celtypes.BoolType:
    try:
        ipaddress.ip_network(str(value), strict=False)
        return celtypes.BoolType("/" in str(value))
    except ValueError:
        return celtypes.BoolType(False)


#: Kubernetes CEL library functions (k8s.io/apiserver/pkg/cel/library) that the rules call.
FUNCTIONS = {"isIP": _is_ip, "isCIDR": _is_cidr}


@functools.cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=FUNCTIONS)


def schema_for(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of the object's kind, or ``None`` for kinds without one here."""
    group = str(obj.get("apiVersion") or "").partition("/")[0]
    directory = GROUPS.get(group)
    if directory is None or not isinstance(obj.get("kind"), str):
        return None
    try:
        return resources.schema(f"{directory}/{obj['kind'].lower()}.json")
    except FileNotFoundError:
        return None


#: CEL reserved words: a property so named is ``__word__`` in a rule (Kubernetes' escaping).
RESERVED = {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
            "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}


def _escaped(value: Any) -> Any:
    if isinstance(value, dict):
        return {(f"__{k}__" if k in RESERVED else k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def defaulted(node: dict[str, Any], value: Any) -> Any:
    """``value`` with the schema's ``default`` values filled in, as the API server does before
    it evaluates the rules (Kubernetes docs: "Defaulting")."""
    if isinstance(value, dict):
        props = node.get("properties") or {}
        out = {k: defaulted(props.get(k) or {}, v) for k, v in value.items()}
        for key, sub in props.items():
            if key not in out and isinstance(sub, dict) and "default" in sub:
                out[key] = defaulted(sub, sub["default"])
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [defaulted(node["items"], v) for v in value]
    return value


def _walk(node: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    if value is None or not isinstance(node, dict):
        return
    for rule in node.get("x-kubernetes-validations") or []:
        yield path, rule, value
    if isinstance(value, dict):
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                yield from _walk(props[key], sub, f"{path}.{key}" if path else key)
            elif isinstance(extra, dict):
                yield from _walk(extra, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, sub in enumerate(value):
            yield from _walk(node["items"], sub, f"{path}[{i}]")


def _evaluate(rule: dict[str, Any], value: Any) -> bool | None:
    """The rule's verdict on ``value``; ``None`` when it cannot be evaluated here."""
    try:
        result = _program(str(rule["rule"])).evaluate({"self": celpy.json_to_cel(_escaped(value))})
    except (celpy.CELEvalError, celpy.CELParseError, TypeError, ValueError, KeyError):
        return None
    return bool(result) if isinstance(result, celtypes.BoolType) else None


def problems(obj: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Every CEL rule ``obj`` breaks, as ``path: message`` (path from the object's root, e.g.
    ``spec.rules[0]: ...``); ``[]`` for a kind without a schema here."""
    schema = schema if schema is not None else schema_for(obj)
    if schema is None:
        return []
    out = []
    for path, rule, value in _walk(schema, defaulted(schema, obj), ""):
        if "oldSelf" in str(rule.get("rule")):
            continue
        if _evaluate(rule, value) is False:
            message = rule.get("message") or f"breaks the rule {rule['rule']}"
            out.append(f"{path}: {message}" if path else str(message))
    return out


def unevaluated(obj: dict[str, Any]) -> list[str]:
    """The rules (``path: rule``) that apply to ``obj`` but could not be evaluated (a function celpy lacks)."""
    schema = schema_for(obj)
    if schema is None:
        return []
    return [f"{path}: {rule['rule']}" for path, rule, value in _walk(schema, defaulted(schema, obj), "")
            if "oldSelf" not in str(rule.get("rule")) and _evaluate(rule, value) is None]
