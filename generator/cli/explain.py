"""``meshgen explain``: which route a request takes and where it goes (DESIGN §4)."""

from __future__ import annotations

import json

import click
from rich.table import Table

from generator.cli.base import Context, out_console, pass_ctx, run
from generator.render import explain as explain_mod
from generator.routing import simulate


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        out[key] = val
    return out


@click.command()
@click.argument("app")
@click.option("--env", required=True, metavar="E", help="Environment whose rendered output is read.")
@click.option("--header", "headers", multiple=True, metavar="K=V", help="A request header (repeatable).")
@click.option("--query", "query", multiple=True, metavar="K=V", help="A query parameter (repeatable).")
@click.option("--uri", default="/", show_default=True, help="Request path (a ?query is split off).")
@click.option("--method", default="GET", show_default=True)
@click.option("--authority", default=None, help="Host/authority (default: APP).")
@click.option("--scheme", default="http", show_default=True)
@click.option("--port", type=int, default=None, help="Port the request is sent to (default: the service port).")
@click.option("--source-namespace", default="default", show_default=True, help="Namespace of the caller.")
@click.option("--source-label", "source_labels", multiple=True, metavar="K=V",
              help="A label of the calling workload (repeatable).")
@click.option("--gateway", default="mesh", show_default=True,
              help='Where the request enters: "mesh" (a sidecar) or "<namespace>/<gateway>".')
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_ctx
def explain(ctx: Context, app: str, env: str, headers: tuple[str, ...], query: tuple[str, ...], uri: str,
            method: str, authority: str | None, scheme: str, port: int | None, source_namespace: str,
            source_labels: tuple[str, ...], gateway: str, output: str) -> None:
    """Which route of APP's rendered VirtualService a request takes, and where it goes."""
    path, _, query_string = uri.partition("?")
    params = dict(p.partition("=")[::2] for p in query_string.split("&") if p)
    params.update(_pairs(query, "--query"))
    request = simulate.Request(
        headers=_pairs(headers, "--header"), query=params, uri=path or "/", method=method,
        authority=authority or app, scheme=scheme,
        port=port if port is not None else explain_mod.default_port(ctx.root, app, env),
        source_labels=_pairs(source_labels, "--source-label"), source_namespace=source_namespace,
        gateway=gateway)
    result = run(explain_mod.explain, ctx.root, app, env, request)
    if output == "json":
        click.echo(json.dumps(result.as_json()))
        return
    _print(result)


def _print(result: explain_mod.Explanation) -> None:
    r = result.request
    details: list[str] = [f"{r.method} {r.scheme}://{r.authority}:{r.port}{r.uri}"]
    details += [f"query {k}={v}" for k, v in r.query.items()]
    details += [f"header {k}: {v}" for k, v in r.headers.items()]
    details.append(f"from {'the mesh' if r.gateway == 'mesh' else 'gateway ' + r.gateway}, "
                   f"namespace {r.source_namespace}"
                   + "".join(f", label {k}={v}" for k, v in r.source_labels.items()))
    out_console.print(f"[bold]{result.path}[/bold]")
    for line in details:
        out_console.print(f"  {line}", markup=False)
    if result.istio_route is None:
        out_console.print("no route matches: Envoy answers 404 (route not found)")
        return
    out_console.print(f"spec route:  [bold]{result.spec_route}[/bold]")
    via = "" if result.istio_route == result.spec_route else " (a guard route of the compiled list)"
    out_console.print(f"Istio route: #{result.istio_index} {result.istio_route}{via}", markup=False)
    table = Table("version", "weight", show_edge=False, pad_edge=False)
    for version, weight in result.destinations.items():
        table.add_row(version, f"{weight}%")
    out_console.print(table)

