"""Drives the /ui page in a real browser: Debian's headless Chromium through Selenium, and
the page's own controls (tests/e2e/test_ui.py on the real app, tests/unit/ingress/routes/
test_ui_page.py on fake engines)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

ANSWER_TIMEOUT_S = 240


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def headless_chromium(width: int = 1280, height: int = 1150) -> Iterator[WebDriver]:
    """Debian's Chromium (apt: chromium chromium-driver), headless, driven by Selenium, which
    is told where both binaries are so that it downloads nothing; yields the driver."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                 "--disable-gpu", "--no-first-run", "--disable-background-networking"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, until: Callable[[WebDriver], Any], timeout: float = 60) -> Any:
    """`until`'s first truthy value, polled every 0.1 s."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(until)


def ask(driver: WebDriver, text: str, overrides: dict | None = None, expect: str = "done") -> WebElement:
    """Type the request JSON overrides (in the Options panel, closed again; none: empty) and
    the question, send, and wait for the answer to end in the `expect`ed state."""
    options = driver.find_element(By.CSS_SELECTOR, "#options summary")
    options.click()
    box = driver.find_element(By.ID, "overrides")
    box.clear()
    if overrides is not None:
        box.send_keys(json.dumps(overrides))
    options.click()
    before = len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant"))
    driver.find_element(By.ID, "prompt").send_keys(text, Keys.ENTER)
    answer = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant")[before:])[0]
    wait(driver, lambda d: answer.get_attribute("data-state") != "streaming", ANSWER_TIMEOUT_S)
    assert answer.get_attribute("data-state") == expect, answer.find_element(By.CLASS_NAME, "error").text
    return answer


def attach(driver: WebDriver, picture: Path, max_pixels: int | None = None) -> None:
    """Upload `picture` with the page's file input; type its max_pixels when given."""
    driver.find_element(By.ID, "image-file").send_keys(str(picture))
    chip = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#attachments .chip"))[-1]
    if max_pixels:
        chip.find_element(By.CLASS_NAME, "max-pixels").send_keys(str(max_pixels))


def fraction_of(mark: WebElement, image: WebElement) -> list[float]:
    """Where `mark` is drawn, in 0..1 of the displayed image: [x1, y1, x2, y2]."""
    m, i = mark.rect, image.rect
    return [(m["x"] - i["x"]) / i["width"], (m["y"] - i["y"]) / i["height"],
            (m["x"] + m["width"] - i["x"]) / i["width"], (m["y"] + m["height"] - i["y"]) / i["height"]]


