"""`stockgate products add|restock|list` as a user runs them, including every bad input."""

from __future__ import annotations

import json
import socket
import subprocess

from redis import Redis

from stockgate.adapters.redis.keys import Keys
from tests.e2e.api_process import STOCKGATE


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STOCKGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def products(env: dict[str, str]) -> list[dict[str, object]]:
    listed = cli(env, "products", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, object]] = json.loads(listed.stdout)
    return rows


def test_add_restock_list_roundtrip(stockgate_env: dict[str, str]) -> None:
    added = cli(
        stockgate_env,
        *("products", "add", "--sku", "TEE-1", "--name", "Tee", "--price-cents", "2500"),
        *("--stock", "10", "--limit-per-customer", "2", "--json"),
    )
    assert added.returncode == 0, added.stderr
    product = json.loads(added.stdout)
    assert product["sku"] == "TEE-1" and product["stock"] == 10 and product["available"] == 10
    assert product["limit_per_customer"] == 2
    restocked = cli(stockgate_env, "products", "restock", "TEE-1", "5", "--json")
    assert restocked.returncode == 0, restocked.stderr
    assert json.loads(restocked.stdout)["available"] == 15
    (listed,) = products(stockgate_env)
    assert listed["stock"] == 15 and listed["available"] == 15
    table = cli(stockgate_env, "products", "list")
    assert table.returncode == 0 and "TEE-1" in table.stdout


ADD = ("products", "add", "--name", "Thing")
BAD_ADDS = [
    ("negative stock", [*ADD, "--sku", "A1", "--price-cents", "100", "--stock", "-1"], "--stock"),
    ("text stock", [*ADD, "--sku", "A1", "--price-cents", "100", "--stock", "ten"], "--stock"),
    ("negative price", [*ADD, "--sku", "A1", "--price-cents", "-5", "--stock", "1"], "price"),
    ("text price", [*ADD, "--sku", "A1", "--price-cents", "1.5", "--stock", "1"], "price"),
    ("empty sku", [*ADD, "--sku", "", "--price-cents", "100", "--stock", "1"], "SKU"),
    ("spaces sku", [*ADD, "--sku", "a b", "--price-cents", "100", "--stock", "1"], "SKU"),
    (
        "zero limit",
        [*ADD, "--sku", "A1", "--price-cents", "1", "--stock", "1", "--limit-per-customer", "0"],
        "limit",
    ),
    (
        "bad currency",
        [*ADD, "--sku", "A1", "--price-cents", "1", "--stock", "1", "--currency", "dollars"],
        "currency",
    ),
    ("missing stock", [*ADD, "--sku", "A1", "--price-cents", "1"], "--stock"),
]


def test_every_bad_add_is_one_line_exit_2_and_changes_nothing(
    stockgate_env: dict[str, str],
) -> None:
    for name, args, mentions in BAD_ADDS:
        result = cli(stockgate_env, *args)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1, (name, message)
        assert "Traceback" not in result.stderr + result.stdout
        assert mentions.lower() in message.lower(), (name, message)
    assert products(stockgate_env) == []


def test_duplicate_sku_and_unknown_restock_change_nothing(stockgate_env: dict[str, str]) -> None:
    first = cli(stockgate_env, *ADD, "--sku", "DUP", "--price-cents", "100", "--stock", "3")
    assert first.returncode == 0, first.stderr
    before = products(stockgate_env)
    duplicate = cli(stockgate_env, *ADD, "--sku", "DUP", "--price-cents", "999", "--stock", "7")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    assert len(duplicate.stderr.strip().splitlines()) == 1
    for args, mentions in (
        (("products", "restock", "NOPE", "5"), "no product"),
        (("products", "restock", "DUP", "-5"), "quantity"),
        (("products", "restock", "DUP", "five"), "quantity"),
        (("products", "restock", "DUP", "0"), "quantity"),
    ):
        result = cli(stockgate_env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert mentions in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert products(stockgate_env) == before


def test_bad_setting_is_named(stockgate_env: dict[str, str]) -> None:
    result = cli({**stockgate_env, "STOCKGATE_HTTP_PORT": "http"}, "products", "list")
    assert result.returncode == 2
    assert "STOCKGATE_HTTP_PORT" in result.stderr and "Traceback" not in result.stderr


def test_reconcile_reports_a_damaged_product_and_repairs_the_rest(
    stockgate_env: dict[str, str],
) -> None:
    for sku in ("GOOD-1", "BAD-1"):
        added = cli(stockgate_env, *ADD, "--sku", sku, "--price-cents", "100", "--stock", "5")
        assert added.returncode == 0, added.stderr
    ids = {row["sku"]: row["id"] for row in products(stockgate_env)}
    redis = Redis.from_url(stockgate_env["STOCKGATE_REDIS_URL"])
    keys = Keys(stockgate_env["STOCKGATE_REDIS_PREFIX"])
    try:
        redis.delete(keys.holds(int(str(ids["BAD-1"]))))
        redis.set(keys.holds(int(str(ids["BAD-1"]))), "oops")  # WRONGTYPE from now on
        redis.hset(keys.stock(int(str(ids["GOOD-1"]))), "available", 2)  # drifted
    finally:
        redis.close()
    fixed = cli(stockgate_env, "reconcile", "--fix", "--json")
    assert fixed.returncode == 1, fixed.stderr  # drift remains: the damaged product
    report = json.loads(fixed.stdout)
    by_sku = {p["sku"]: p for p in report["products"]}
    assert "WRONGTYPE" in by_sku["BAD-1"]["error"] and "stock" not in by_sku["BAD-1"]
    assert by_sku["GOOD-1"]["error"] is None and by_sku["GOOD-1"]["fixes"]
    (good,) = [p for p in products(stockgate_env) if p["sku"] == "GOOD-1"]
    assert good["available"] == 5


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now


def test_restock_key_is_printed_and_a_rerun_adds_nothing(stockgate_env: dict[str, str]) -> None:
    added = cli(stockgate_env, *ADD, "--sku", "KEY-1", "--price-cents", "100", "--stock", "3")
    assert added.returncode == 0, added.stderr
    first = cli(stockgate_env, "products", "restock", "KEY-1", "4", "--json")
    assert first.returncode == 0, first.stderr
    shown = json.loads(first.stdout)
    key = str(shown["restock_key"])
    assert f"restock key: {key}" in first.stderr
    assert (shown["stock"], shown["available"], shown["added"]) == (7, 7, True)
    again = cli(stockgate_env, "products", "restock", "KEY-1", "4", "--key", key, "--json")
    assert again.returncode == 0, again.stderr
    assert "nothing added" in again.stderr
    assert (json.loads(again.stdout)["stock"], json.loads(again.stdout)["added"]) == (7, False)
    other = cli(stockgate_env, "products", "restock", "KEY-1", "9", "--key", key)
    assert other.returncode == 2 and "new key" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    bad = cli(stockgate_env, "products", "restock", "KEY-1", "9", "--key", "has space")
    assert bad.returncode == 2 and "--key" in bad.stderr
    (listed,) = [p for p in products(stockgate_env) if p["sku"] == "KEY-1"]
    assert listed["stock"] == 7 and listed["available"] == 7


def test_restock_committed_while_redis_is_down_exits_0_with_a_note(
    stockgate_env: dict[str, str],
) -> None:
    added = cli(stockgate_env, *ADD, "--sku", "DOWN-1", "--price-cents", "100", "--stock", "3")
    assert added.returncode == 0, added.stderr
    no_redis = {**stockgate_env, "STOCKGATE_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    down = cli(no_redis, "products", "restock", "DOWN-1", "5", "--key", "r-1", "--json")
    assert down.returncode == 0, down.stderr
    assert "committed" in down.stderr and "reconcile" in down.stderr
    shown = json.loads(down.stdout)
    assert (shown["stock"], shown["available"], shown["gate_updated"]) == (8, None, False)
    # Rerun once Redis is back: nothing is added twice, and the gate catches up.
    rerun = cli(stockgate_env, "products", "restock", "DOWN-1", "5", "--key", "r-1", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["available"] == 8
    (listed,) = [p for p in products(stockgate_env) if p["sku"] == "DOWN-1"]
    assert listed["stock"] == 8 and listed["available"] == 8
