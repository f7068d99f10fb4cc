"""The `stockgate` command line (typer). Thin: parse, call a service, print, exit.

Exit codes: 0 success, 1 drift or failure at run time, 2 bad input (one line, no traceback),
3 a backing store is unavailable (see console.py, which maps errors to them).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from stockgate.domain.errors import InvalidInput, StoreUnavailable
from stockgate.entrypoints.cli.console import (
    err,
    fail,
    out,
    parse_int,
    production_settings,
    run,
    settings,
)
from stockgate.entrypoints.cli.orders import orders_app

app = typer.Typer(
    help="stockgate: sell limited stock to many buyers at once, never oversell.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
products_app = typer.Typer(help="Manage the catalog.", no_args_is_help=True)
admin_app = typer.Typer(help="Manage admin users.", no_args_is_help=True)
app.add_typer(products_app, name="products")
app.add_typer(admin_app, name="admin")
app.add_typer(orders_app, name="orders")  # sub-commands in modules of their own


class Role(StrEnum):
    FULFILLMENT = "fulfillment"
    EXPIRY = "expiry"
    MAINTENANCE = "maintenance"
    ALL = "all"


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Add a sample catalog and an admin login.")] = False,
) -> None:
    """Run everything on this machine: stores (embedded when not configured), API, workers."""
    from stockgate.entrypoints.cli.up import run_up

    raise typer.Exit(run_up(settings(), demo=demo))


@app.command()
def api() -> None:
    """Run the HTTP API (granian) on STOCKGATE_HTTP_HOST:STOCKGATE_HTTP_PORT."""
    from stockgate.entrypoints.http.serve import serve

    raise typer.Exit(serve(production_settings()))


@app.command()
def worker(
    role: Annotated[Role, typer.Option(help="Which background work to do.")] = Role.ALL,
) -> None:
    """Run background workers: fulfillment (paid orders, payment events), expiry (stock back
    on time), maintenance (reconcile, re-ask for lost work, queue depth, purge), or all."""
    from stockgate.entrypoints.worker.main import run_worker

    raise typer.Exit(run_worker(production_settings(), role.value))


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest version (Alembic)."""
    from stockgate.adapters.embedded.stores import embedded_stores
    from stockgate.adapters.postgres.migrate import upgrade

    try:
        with embedded_stores(settings()) as urls:
            upgrade(urls.database_url)
    except OSError as exc:
        fail(f"cannot reach PostgreSQL: {exc}", 3)
    except StoreUnavailable as exc:
        fail(exc.detail, 3)
    out.print("database is up to date")


@products_app.command("add")
def products_add(
    sku: Annotated[str, typer.Option(help="Unique stock-keeping unit.")],
    name: Annotated[str, typer.Option(help="Name shown to buyers.")],
    price_cents: Annotated[str, typer.Option(help="Price in cents.")],
    stock: Annotated[str, typer.Option(help="Units for sale.")],
    limit_per_customer: Annotated[
        str | None, typer.Option(help="Most units one customer may buy.")
    ] = None,
    currency: Annotated[str, typer.Option(help="Three-letter currency code.")] = "usd",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add a product."""
    from stockgate.domain.product import NewProduct
    from stockgate.entrypoints.cli.catalog import add

    try:
        new = NewProduct(
            sku=sku,
            name=name,
            price_cents=parse_int(price_cents, "--price-cents"),
            stock=parse_int(stock, "--stock"),
            currency=currency.lower(),
            limit_per_customer=None
            if limit_per_customer is None
            else parse_int(limit_per_customer, "--limit-per-customer", minimum=1),
        )
    except InvalidInput as exc:
        fail(exc.detail)
    view = run(lambda: add(settings(), new))
    print_products([view], as_json, single=True)


# Negative numbers must reach our own check ("-5" is not an option here).
@products_app.command("restock", context_settings={"ignore_unknown_options": True})
def products_restock(
    sku: Annotated[str, typer.Argument(help="SKU of the product.")],
    quantity: Annotated[str, typer.Argument(help="Units to add.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Restock key: a rerun with the same key adds nothing. "
            "Generated and printed when not given.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add units to a product's stock (also during a live sale), once per key.

    When it is unclear whether a restock went through (an error, a lost terminal), run it
    again with the same --key: it adds the units only if they were not added yet.
    """
    from stockgate.domain.product import check_restock_key
    from stockgate.entrypoints.cli.catalog import restock
    from stockgate.services.catalog import new_restock_key

    units = parse_int(quantity, "quantity", minimum=1)
    generated = key is None
    if key is None:
        key = new_restock_key()
    else:
        try:
            check_restock_key(key)
        except InvalidInput as exc:
            fail(f"--key: {exc.detail}")
    rerun = (
        f"rerun with the same key to be safe: stockgate products restock {sku} {units} --key {key}"
    )
    view = run(lambda: restock(settings(), sku, units, key), on_store_error=rerun)
    if generated:
        err.print(f"restock key: {key}", highlight=False, soft_wrap=True)
    if not view["added"]:
        err.print(f"note: restock key {key} was applied before; nothing added now", highlight=False)
    if not view["gate_updated"]:
        err.print(
            "note: the restock is committed, but Redis could not be updated now; the repair "
            "(`stockgate reconcile --fix`, or the maintenance worker) makes the units available",
            highlight=False,
            soft_wrap=True,
        )
    print_products([view], as_json, single=True)


@products_app.command("list")
def products_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List products with their stock and what is available now."""
    from stockgate.entrypoints.cli.catalog import list_all

    print_products(run(lambda: list_all(settings())), as_json)


def print_products(views: list[dict[str, object]], as_json: bool, *, single: bool = False) -> None:
    if as_json:
        print(json.dumps(views[0] if single else views))
        return
    table = Table("id", "sku", "name", "price", "stock", "available", "limit")
    for v in views:
        table.add_row(
            str(v["id"]),
            str(v["sku"]),
            str(v["name"]),
            f"{int(str(v['price_cents'])) / 100:.2f} {str(v['currency']).upper()}",
            str(v["stock"]),
            "unknown" if v["available"] is None else str(v["available"]),
            str(v["limit_per_customer"] or "-"),
        )
    out.print(table)


@admin_app.command("create-user")
def admin_create_user(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an admin login (password from a prompt, or --password-stdin)."""
    from stockgate.entrypoints.cli.admin import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    run(lambda: create_user(settings(), name, password))
    out.print(f"admin user {name!r} created")


@app.command()
def reconcile(
    fix: Annotated[bool, typer.Option("--fix", help="Repair the drift found.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare Redis with PostgreSQL per product; exit 1 when drift remains."""
    from stockgate.entrypoints.cli.reconcile import reconcile_command

    raise typer.Exit(run(lambda: reconcile_command(settings(), fix=fix, as_json=as_json)))


@app.command()
def bench(
    scenario: Annotated[
        str, typer.Argument(help="ceiling, reserve, sold-out, flash-sale or live-stock.")
    ],
    url: Annotated[
        str | None, typer.Option(help="Target a running stack; default: start one.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 10.0,
    connections: Annotated[int, typer.Option(help="Concurrent connections.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    with_ceiling: Annotated[
        bool,
        typer.Option(
            "--with-ceiling/--no-ceiling",
            help="Also load GET /healthz in the same run, for the ratio.",
        ),
    ] = True,
    profile: Annotated[
        Path | None, typer.Option(help="Write a py-spy profile of the API under load here.")
    ] = None,
    runs: Annotated[
        int,
        typer.Option(help="Run it this many times (1-50) and show medians and goals met."),
    ] = 1,
    rate_limits: Annotated[
        bool,
        typer.Option(
            "--rate-limits",
            help="Count the rate limits in Redis as production does (set too high to refuse), "
            "to measure what they cost; default: off.",
        ),
    ] = False,
) -> None:
    """Run a load scenario and check consistency afterwards; non-zero exit on any drift."""
    from stockgate.bench.cli import run_bench

    raise typer.Exit(
        run_bench(
            settings(),
            scenario,
            url=url,
            duration=duration,
            connections=connections,
            as_json=as_json,
            with_ceiling=with_ceiling,
            profile=profile,
            runs=runs,
            rate_limits=rate_limits,
        )
    )


def main() -> None:
    """The console script: usage errors become one line and exit 2, never a box or traceback."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            print(context.get_help())
            sys.exit(0)
        hint = f" (see: {context.command_path} --help)" if context is not None else ""
        err.print(f"[bold red]error:[/] {exc.format_message()}{hint}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # the process boundary: one line, not a traceback
        err.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {exc}", highlight=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
