"""Products: create, restock (with a restock key), change price and per-customer limit."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.response import Redirect

from stockgate.domain.errors import InvalidInput, StockgateError
from stockgate.domain.product import MAX_PRICE_CENTS, MAX_STOCK, NewProduct
from stockgate.entrypoints.admin.forms import Form
from stockgate.entrypoints.admin.web import render, session_of, state_of
from stockgate.services import catalog
from stockgate.services.admin_products import change_terms, create_product, restock_product
from stockgate.services.catalog import new_restock_key


async def _page(
    request: Request[Any, Any, Any],
    status_code: int = 200,
    *,
    form: Form | None = None,
    form_for: str | None = None,
    notice: str | None = None,
) -> Response[str]:
    container = state_of(request).container
    views = await catalog.list_products(uow_factory=container.uow_factory, gate=container.gate)
    return render(
        "products.html",
        status_code,
        session=session_of(request),
        page="products",
        views=views,
        form=form,
        form_for=form_for,
        notice=notice or request.query_params.get("notice"),
        new_key=new_restock_key(),
    )


@get("/products", include_in_schema=False)
async def products_page(request: Request[Any, Any, Any]) -> Response[str]:
    return await _page(request)


@post("/products", include_in_schema=False, status_code=303)
async def create(request: Request[Any, Any, Any]) -> Response[Any]:
    form = Form.of(await request.form())
    sku = form.text("sku", "SKU")
    name = form.text("name", "Name")
    price = form.integer("price_cents", "Price (cents)", minimum=0, maximum=MAX_PRICE_CENTS)
    stock = form.integer("stock", "Stock", minimum=0, maximum=MAX_STOCK)
    limit = form.integer("limit", "Limit", minimum=1, maximum=MAX_STOCK, required=False)
    if not form.ok or price is None or stock is None:
        return await _page(request, 422, form=form, form_for="create")
    container = state_of(request).container
    try:
        new = NewProduct(
            sku=sku, name=name, price_cents=price, stock=stock, limit_per_customer=limit
        )
        await create_product(
            session_of(request).username,
            new,
            uow_factory=container.uow_factory,
            gate=container.gate,
            audit=container.audit,
        )
    except (InvalidInput, StockgateError) as exc:
        if not _form_error(exc):
            raise
        form.errors["_"] = exc.detail
        return await _page(request, 422, form=form, form_for="create")
    return Redirect(f"/admin/products?notice=Added+{sku}", status_code=303)


@post("/products/{product_id:int}/restock", include_in_schema=False, status_code=303)
async def restock(request: Request[Any, Any, Any], product_id: int) -> Response[Any]:
    form = Form.of(await request.form())
    quantity = form.integer("quantity", "Quantity", minimum=1, maximum=MAX_STOCK)
    sku = form.text("sku", "SKU")
    # The key comes with the form (made when the page was shown): sending the same form again
    # (a double click, a retry after a timeout) adds nothing the second time.
    key = form.text("key", "Restock key")
    if not form.ok or quantity is None:
        return await _page(request, 422, form=form, form_for=f"restock-{product_id}")
    container = state_of(request).container
    try:
        done = await restock_product(
            session_of(request).username,
            sku,
            quantity,
            key,
            uow_factory=container.uow_factory,
            gate=container.gate,
            audit=container.audit,
            stock_changes=container.stock_changes,  # watchers of the product see it at once
        )
    except StockgateError as exc:
        if not _form_error(exc):
            raise
        form.errors["_"] = exc.detail
        return await _page(request, 422, form=form, form_for=f"restock-{product_id}")
    if not done.added:
        notice = f"This restock of {sku} (key {key}) was applied before: nothing changed"
    else:
        notice = f"Restocked {sku} by {quantity}"
    return Redirect(f"/admin/products?{urlencode({'notice': notice})}", status_code=303)


@post("/products/{product_id:int}/terms", include_in_schema=False, status_code=303)
async def terms(request: Request[Any, Any, Any], product_id: int) -> Response[Any]:
    form = Form.of(await request.form())
    price = form.integer("price_cents", "Price (cents)", minimum=0, maximum=MAX_PRICE_CENTS)
    limit = form.integer("limit", "Limit", minimum=1, maximum=MAX_STOCK, required=False)
    if not form.ok or price is None:
        return await _page(request, 422, form=form, form_for=f"terms-{product_id}")
    container = state_of(request).container
    try:
        product = await change_terms(
            session_of(request).username,
            product_id,
            price_cents=price,
            limit_per_customer=limit,
            uow_factory=container.uow_factory,
            gate=container.gate,
            audit=container.audit,
        )
    except StockgateError as exc:
        if not _form_error(exc):
            raise
        form.errors["_"] = exc.detail
        return await _page(request, 422, form=form, form_for=f"terms-{product_id}")
    return Redirect(f"/admin/products?notice=Updated+{product.sku}", status_code=303)


def _form_error(exc: StockgateError) -> bool:
    """Errors the operator fixes in the form (bad values, a taken SKU, an unknown product);
    others (a store down) get the error page."""
    return exc.code in {
        "invalid_input",
        "duplicate_sku",
        "product_not_found",
        "restock_in_progress",
    }


PRODUCT_ROUTES = [products_page, create, restock, terms]
