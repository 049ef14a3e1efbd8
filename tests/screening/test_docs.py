"""The API docs work without internet: every asset /docs loads comes from the service."""

from __future__ import annotations

import re

import httpx


async def test_the_docs_page_loads_only_assets_the_service_serves(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("http://test/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assets += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert any(a.endswith(".js") for a in assets), page.text
    assert any(a.endswith(".css") for a in assets), page.text
    for asset in assets:
        assert asset.startswith("/"), f"{asset} would be fetched from another host"
        answer = await client.get(f"http://test{asset}")
        assert answer.status_code == 200, asset
        assert answer.content, asset
