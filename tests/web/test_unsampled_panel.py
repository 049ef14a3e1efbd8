"""The dashboard's not-yet-swabbed panel in headless Chromium: per district of the
round, how many registered residents have no sample yet, and a link that fetches the
list (the CSV download is audited by the service)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlalchemy.engine import make_url


async def audited(live) -> list[str]:
    dsn = make_url(live.db_url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        return [r["action"] for r in await conn.fetch("SELECT action FROM audit_log")]
    finally:
        await conn.close()


async def test_the_dashboard_shows_who_is_not_swabbed_per_district(
    browser, live, make_scene, wait_for
):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=12)
        await scene.fill(scene.barcodes["P1"][0], [0, 1, 2])

    browser.get(live.base + "/")
    field = wait_for(lambda: browser.find_element(By.ID, "token"), what="the token field")
    field.send_keys(live.admin_token, Keys.ENTER)
    rows = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#unsampled tbody tr"), what="the panel"
    )
    assert [r.get_attribute("data-district") for r in rows] == ["D1", "D2"]
    assert "越秀区" in rows[0].text and "9 / 12" in rows[0].text
    assert "0 / 0" in rows[1].text
    link = rows[0].find_element(By.CSS_SELECTOR, "a")
    link.click()
    for _ in range(100):  # the page fetches the CSV with the token; the service audits it
        if await audited(live):
            break
        await asyncio.sleep(0.1)
    assert await audited(live) == ["unsampled-csv"]
    wait_for(lambda: link.text == "名单", what="the link back after the download")
