"""Driving the admin dashboard over HTTP as a browser would: forms, cookies, CSRF tokens."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await client.get("/admin/login")
    assert page.status_code == 200, page.text
    return await client.post(
        "/admin/login",
        data={"username": username, "password": password, "_csrf": csrf_of(page.text)},
    )


async def page_csrf(client: httpx.AsyncClient, path: str = "/admin/products") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
