"""``meshgen explain``: which route a request takes and where it goes (DESIGN §4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from rich.table import Table

from generator.cli.base import Context, out_console, pass_ctx, run
from generator.errors import Place, SpecError, SpecErrors, UsageError
from generator.render import explain as explain_mod
from generator.render import objects as objects_mod
from generator.routing import httproute, simulate


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        out.setdefault(key, val)  # given twice: the first, as Envoy matches a query parameter
    return out


def read_asks(stream: TextIO, name: str) -> list[explain_mod.Ask]:
    """Requests as JSON lines (one object per line; blank lines and ``#`` comments skipped).

    Raises:
        SpecErrors: every bad line, as ``name:line:col: error: ...``.
    """
    asks, errors = [], []
    for number, line in enumerate(stream, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        col = len(line) - len(line.lstrip()) + 1
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            errors.append(SpecError(f"not JSON: {e.msg}", place=Place(name, number, col + e.pos),
                                    hint='one object per line, e.g. {"uri": "/reviews/1"}'))
            continue
        try:
            asks.append(explain_mod.Ask.from_json(data, Place(name, number, col)))
        except SpecError as e:
            errors.append(e)
    SpecErrors.collect(errors)
    return asks


@click.command()
@click.argument("args", nargs=-1, metavar="APP | --objects PATH...")
@click.option("--objects", "objects", is_flag=True,
              help="Answer for the Gateway API and Istio objects of the YAML files or directories given "
                   "(any objects, not only meshgen's), entering at --gateway NS/NAME or sent to --service NS/NAME.")
@click.option("--service", default=None, metavar="NS/NAME",
              help="With --objects: the Service the request is sent to in the mesh (GAMMA routes, VirtualServices).")
@click.option("--env", default=None, metavar="E", help="Environment whose rendered output is read (required with APP).")
@click.option("--header", "headers", multiple=True, metavar="K=V", help="A request header (repeatable).")
@click.option("--query", "query", multiple=True, metavar="K=V",
              help="A query parameter (repeatable; after those of --uri; a name given twice keeps its first value).")
@click.option("--uri", default="/", show_default=True, help="Request target; a ?query is split off. Normalised as Envoy does.")
@click.option("--method", default="GET", show_default=True)
@click.option("--authority", default=None,
              help="Host/authority (default: the VirtualService's first host by the name the caller's namespace "
                   "resolves, e.g. reviews beside it, reviews.mesh elsewhere; at a gateway its first host the Gateway serves).")
@click.option("--scheme", default=None, help="http or https (default: https on a Gateway's HTTPS server, else http).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port the request is sent to (default: the service port; through a gateway, the Gateway server's port).")
@click.option("--source-namespace", default=None,
              help="Namespace of the caller (default: the app's own; only there is the Service's bare name served).")
@click.option("--source-label", "source_labels", multiple=True, metavar="K=V",
              help="A label of the calling workload (repeatable).")
@click.option("--gateway", default="mesh", show_default=True,
              help='Where the request enters: "mesh" (a sidecar) or a Gateway the VirtualService binds ("<namespace>/<name>").')
@click.option("--requests", "requests_file", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              metavar="FILE", help="Many requests as JSON lines ('-': stdin), one answer each; the request options are ignored.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_ctx
def explain(ctx: Context, args: tuple[str, ...], objects: bool, service: str | None, env: str | None, headers: tuple[str, ...], query: tuple[str, ...], uri: str,
            method: str, authority: str | None, scheme: str | None, port: int | None, source_namespace: str | None,
            source_labels: tuple[str, ...], gateway: str, requests_file: str | None, output: str) -> None:
    """Which route of APP's rendered VirtualService a request takes, and where it goes.

    With --requests, each line is a JSON object with any of: uri, method, headers, query,
    authority, scheme, port, sourceNamespace, sourceLabels, gateway.

    With --objects PATH..., which rule of the Gateway API HTTPRoutes (or Istio VirtualServices)
    in PATH takes the request and its backends ("namespace/name": weight), or the status the
    proxy answers (404: no route; 500: no valid backend; 200: a CORS preflight the CORS filter
    answers). The cross-object analysis of those objects (MG201-MG205) is printed on stderr.
    """
    if objects:
        _explain_objects(args, service, gateway, headers, query, uri, method, authority, scheme, port,
                         source_namespace, output)
        return
    if len(args) != 1 or service is not None:
        raise click.UsageError("give one APP (or --objects PATH... with --gateway NS/NAME or --service NS/NAME)")
    if env is None:
        raise click.UsageError("Missing option '--env'.")
    app = args[0]
    rendered = run(explain_mod.load, ctx.root, app, env)
    if not (rendered.vs.get("spec") or {}).get("http"):  # TCP and TLS routes only: no HTTP request to follow
        lines = explain_mod.l4_routes(rendered.vs)
        if output == "json":
            click.echo(json.dumps({"path": rendered.path, "l4Routes": lines}))
        else:
            out_console.print(f"[bold]{rendered.path}[/bold]")
            out_console.print("no HTTP routes; its TCP and TLS routes, first match wins:", markup=False)
            for line in lines:
                out_console.print(f"  {line}", markup=False)
        return
    if requests_file is not None:
        asks = run(_load_asks, requests_file)
    else:
        asks = [explain_mod.Ask(uri=uri, method=method, headers=_pairs(headers, "--header"),
                                query=_pairs(query, "--query"), authority=authority, scheme=scheme, port=port,
                                source_namespace=source_namespace,
                                source_labels=_pairs(source_labels, "--source-label"), gateway=gateway)]
    for i, ask in enumerate(asks):
        result = run(rendered.explain, ask)
        if output == "json":
            click.echo(json.dumps(result.as_json()))
        else:
            if i:
                out_console.print()
            _print(result)
    l4 = explain_mod.l4_routes(rendered.vs)
    if l4 and output == "text":  # the VirtualService's TCP and TLS routes, beside the HTTP request followed
        out_console.print("its TCP and TLS routes, first match wins:", markup=False)
        for line in l4:
            out_console.print(f"  {line}", markup=False)


def _explain_objects(paths: tuple[str, ...], service: str | None, gateway: str, headers: tuple[str, ...],
                     query: tuple[str, ...], uri: str, method: str, authority: str | None, scheme: str | None,
                     port: int | None, source_namespace: str | None, output: str) -> None:
    if not paths:
        raise click.UsageError("--objects needs one or more YAML files or directories")
    if (service is None) == (gateway == "mesh"):
        raise click.UsageError("with --objects give one of --gateway NS/NAME or --service NS/NAME")
    read = run(objects_mod.read, list(paths))
    for finding in objects_mod.analyze(read):  # what keeps a route from attaching or a rule from being taken
        click.echo(finding.format(), err=True)
    loaded = httproute.Objects.of([o.obj for o in read])
    where = {"service": run(objects_mod.parent, service, "--service")} if service is not None else \
        {"gateway": run(objects_mod.parent, gateway, "--gateway")}
    asked = objects_mod.Asked(uri=uri, method=method, headers=_pairs(headers, "--header"),
                              query=_pairs(query, "--query"), authority=authority, scheme=scheme or "http",
                              port=port, source_namespace=source_namespace)
    answer = run(objects_mod.explain, loaded, asked, **where)
    if output == "json":
        click.echo(json.dumps(answer))
        return
    if answer.get("route") is None and answer.get("outcome") == "default":
        out_console.print("no route attaches to this Service: the request goes to the Service itself", markup=False)
    elif answer.get("route") is None:
        out_console.print("no route matches: the proxy answers 404", markup=False)
    else:
        rule = answer.get("ruleName") or answer.get("rule")
        out_console.print(f"route: [bold]{answer['route']}[/bold], rule {rule}")
    if answer.get("backends"):
        table = Table("backend", "weight", show_edge=False, pad_edge=False)
        for name, weight in answer["backends"].items():
            table.add_row(name, str(weight))
        out_console.print(table)
    for name, reason in (answer.get("invalidBackends") or {}).items():
        out_console.print(f"invalid backend {name}: {reason} (answers 500)", markup=False)
    if answer.get("status") is not None:
        out_console.print(f"the proxy answers {answer['status']} itself", markup=False)
    for key, value in answer.items():
        if key not in ("route", "rule", "ruleName", "backends", "invalidBackends", "status", "outcome"):
            out_console.print(f"{key}: {_value(value)}", markup=False)


def _load_asks(name: str) -> list[explain_mod.Ask]:
    if name == "-":
        return read_asks(sys.stdin, "<stdin>")
    try:
        with open(name, encoding="utf-8") as f:
            return read_asks(f, name)
    except OSError as e:
        raise UsageError(f"cannot read {name}: {e.strerror}") from e


def _value(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": ")) if isinstance(value, (dict, list)) else str(value)


def _print(result: explain_mod.Explanation) -> None:
    r = result.request
    details: list[str] = [f"{r.method} {r.scheme}://{r.authority}:{r.port}{r.uri}"]
    if r.target is not None:
        details.append(f"sent as {r.target} (Envoy normalises the path)")
    details += [f"query {k}={v}" for k, v in r.query.items()]
    details += [f"header {k}: {v}" for k, v in r.headers.items()]
    where = "the mesh (a sidecar)" if r.gateway == "mesh" else f"gateway {r.gateway}, port {r.port}"
    details.append(f"from {where}, namespace {r.source_namespace}"
                   + "".join(f", label {k}={v}" for k, v in r.source_labels.items()))
    out_console.print(f"[bold]{result.path}[/bold]")
    for line in details:
        out_console.print(f"  {line}", markup=False)
    if result.outcome == explain_mod.NOT_SERVED:
        if r.gateway == "mesh":
            proxy = f"a sidecar in namespace {r.source_namespace}"
            fate = ("the sidecar's catch-all virtual host passes the request through to the address it was "
                    "sent to (PassthroughCluster), not to this app's routes")
        else:
            proxy = f"gateway {r.gateway} on port {r.port}"
            fate = "the gateway answers 404"
        names = ", ".join(result.domains) or "none"
        out_console.print(f"authority {r.authority!r} is not served by this VirtualService "
                          f"(hosts: {', '.join(result.hosts)}): {proxy} serves it as {names}; {fate}",
                          markup=False)
        return
    if result.outcome == simulate.OMITTED:
        if r.gateway == "mesh":
            out_console.print("no route of this VirtualService applies to this proxy (port, source): istiod "
                              "leaves it out, and the Service's default route sends the request to every "
                              f"version ({', '.join(result.versions) or 'all endpoints'}), by endpoint, "
                              "not by subset weights", markup=False)
        else:
            out_console.print(f"no route of this VirtualService applies at {r.gateway} on port {r.port}: "
                              "istiod leaves it out, so the gateway answers 404", markup=False)
        return
    if result.outcome == simulate.NO_MATCH:
        out_console.print("no route matches: Envoy answers 404 (route not found)")
        return
    if result.spec_route is None:
        out_console.print(f"no spec route matches: Istio route #{result.istio_index} {result.istio_route} "
                          f"answers {result.status}", markup=False)
        return
    out_console.print(f"spec route:  [bold]{result.spec_route}[/bold]")
    via = "" if result.istio_route == result.spec_route else " (a guard route of the compiled list)"
    out_console.print(f"Istio route: #{result.istio_index} {result.istio_route}{via}", markup=False)
    if result.destinations:
        table = Table("version", "weight", show_edge=False, pad_edge=False)
        for version, weight in result.destinations.items():
            table.add_row(version, f"{weight}%")
        out_console.print(table)
    if result.status is not None:
        out_console.print(f"Envoy answers {result.status} itself" + (
            f": location {result.details['location']}" if "location" in result.details else "") + (
            " (its CORS filter answers the preflight)" if (result.details.get("cors") or {}).get("answered") else ""),
            markup=False)
    for key, value in result.details.items():
        if key == "mirror":
            value = f"{value['version']}, {value['percent']:g}% of requests"
        if key == "location":
            continue
        out_console.print(f"{key}: {_value(value)}", markup=False)
