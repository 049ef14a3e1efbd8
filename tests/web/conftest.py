"""Headless Chromium driven by Selenium, for the page tests (the running service is
the ``live`` fixture of tests/conftest.py). Without Chromium they are skipped, loudly."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SCREENING_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SCREENING_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SCREENING_ARTIFACTS", "var/artifacts"))


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
