"""A real `screening serve` process on its own database, and headless Chromium driven
by Selenium, for the page tests. Without Chromium the tests are skipped, loudly."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from screening.db import drop_database, ensure_database, with_database

CHROMIUM = os.environ.get("SCREENING_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SCREENING_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SCREENING_ARTIFACTS", "var/artifacts"))


@dataclass(frozen=True)
class Live:
    base: str
    admin_token: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live(server_url: str, tmp_path: Path) -> AsyncIterator[Live]:
    """`screening serve` as a user starts it, on a fresh database of the test server."""
    name = f"screening_live_{secrets.token_hex(3)}"
    await ensure_database(server_url, name)
    token = "live-" + secrets.token_hex(8)
    port = _free_port()
    env = {
        **os.environ,
        "SCREENING_DATABASE_URL": with_database(server_url, name),
        "SCREENING_ADMIN_TOKEN": token,
        "SCREENING_DATA_DIR": str(tmp_path),
        "SCREENING_EVENTS_POLL_SECONDS": "0.2",
        "SCREENING_TOKEN_CACHE_SECONDS": "0",
    }
    log_path = tmp_path / "server.log"
    process = await asyncio.to_thread(_start, env, port, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            for _ in range(300):
                try:
                    if (await client.get(base + "/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(log_path.read_text())
        yield Live(base, token)
    finally:
        await asyncio.to_thread(_stop, process)
        await drop_database(server_url, name)


def _start(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "screening.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's chromium + chromium-driver)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.skip(
            f"browser test skipped: {', '.join(missing)} not found; install Debian's"
            " chromium and chromium-driver (.ci/run does)"
        )
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(condition: Any, timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the element may not be there yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.1)


def _screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


@pytest.fixture
def wait_for() -> Any:
    """``wait_for(condition, timeout, what)``: poll until ``condition()`` is truthy."""
    return _wait_for


@pytest.fixture
def screenshot() -> Any:
    """``screenshot(driver, name)``: save a PNG into the test artifacts folder."""
    return _screenshot
