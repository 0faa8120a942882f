"""The /ui page's script in a real headless Chromium, against the real ingress over fake
engines (tests/fakes.py) served by uvicorn on loopback: what the shared e2e app cannot show
without Ray's minutes (API keys set, errors, several pictures). The page against the real
stack: tests/e2e/test_ui.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from deployments.config import AppConfig
from ingress.app import create_api
from ingress.router import ModelRouter
from tests.fakes import LocalModelClient, start_fake_server
from tests.helpers import free_port
from tests.ui_page import ask, attach, fraction_of, headless_chromium, wait
from tests.unit.conftest import unit_config

KEY = "sk-page"
VL25 = "tiny-qwen2.5-vl"


@dataclass
class Served:
    """The app on loopback: its URL and its fake model servers (answers can be set)."""

    url: str
    servers: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def served(tiny_cache) -> Iterator[Served]:
    """The real ingress with an API key, its fake engines built in the server's own loop."""
    config = AppConfig.model_validate({**unit_config().model_dump(), "ingress": {"api_keys": [KEY]}})
    port, ready = free_port(), threading.Event()
    result = Served(f"http://127.0.0.1:{port}")
    server: list[uvicorn.Server] = []

    async def main() -> None:
        result.servers.update({m.name: await start_fake_server(m) for m in config.models})
        clients = {name: LocalModelClient(s) for name, s in result.servers.items()}
        app = create_api(config, ModelRouter.from_clients(config, clients))
        server.append(uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")))
        serving = asyncio.create_task(server[0].serve())
        while not server[0].started:
            await asyncio.sleep(0.05)
        ready.set()
        await serving

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(120), "the app did not start"
    yield result
    server[0].should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def page(served: Served) -> Iterator[WebDriver]:
    """The page, past its API-key prompt."""
    with headless_chromium() as driver:
        driver.get(f"{served.url}/ui")
        wait(driver, lambda d: d.find_element(By.ID, "key-field").is_displayed())
        key = driver.find_element(By.ID, "api-key")
        assert "needs an API key" in driver.find_element(By.ID, "status").text
        assert not driver.find_elements(By.CSS_SELECTOR, "#model option")  # nothing listed without the key
        key.send_keys(KEY, Keys.TAB)
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#model option[value='{VL25}']"))
        driver.find_element(By.ID, "model").send_keys(VL25)
        yield driver


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("page-pictures")
    paths = [folder / "wide.png", folder / "tall.png"]
    Image.new("RGB", (448, 224), (200, 60, 60)).save(paths[0])
    Image.new("RGB", (224, 448), (60, 60, 200)).save(paths[1])
    return paths


def test_each_item_is_drawn_on_the_picture_it_names(page: WebDriver, served: Served, pictures: list[Path]):
    served.servers[VL25]._engine.answer = (
        'Picture 2: {"bbox_2d": [0, 0, 112, 224], "label": "top half"} '
        'Picture 1: {"point_2d": [336, 56], "label": "spot"}'
    )
    page.find_element(By.ID, "image-file").send_keys("\n".join(str(p) for p in pictures))  # two at once
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#attachments .chip")) == 2)
    answer = ask(page, "Compare the pictures.")
    figures = answer.find_elements(By.CSS_SELECTOR, "figure.ground")
    assert [f.get_attribute("data-image-index") for f in figures] == ["0", "1"]
    point, first = figures[0].find_element(By.CSS_SELECTOR, ".mark.point"), figures[0].find_element(By.TAG_NAME, "img")
    center = [point.rect["x"] + point.rect["width"] / 2, point.rect["y"] + point.rect["height"] / 2]
    assert abs((center[0] - first.rect["x"]) / first.rect["width"] - 0.75) < 0.02
    assert abs((center[1] - first.rect["y"]) / first.rect["height"] - 0.25) < 0.02
    box, second = figures[1].find_element(By.CSS_SELECTOR, ".mark.box"), figures[1].find_element(By.TAG_NAME, "img")
    assert box.text == "top half"
    assert all(abs(d - e) < 0.02 for d, e in zip(fraction_of(box, second), [0, 0, 0.5, 0.5], strict=True))


def test_a_refused_request_shows_why_and_can_be_asked_again(page: WebDriver, served: Served):
    failed = ask(page, "Once more?", {"n": 0}, expect="error")
    assert "(n)" in failed.find_element(By.CLASS_NAME, "error").text  # the field the server named
    served.servers[VL25]._engine.answer = "fine"
    again = ask(page, "Once more?")
    assert again.find_element(By.CLASS_NAME, "text").text == "fine"
    sent = served.servers[VL25]._engine.prompts[-1]["prompt"]
    assert sent.count("Once more?") == 1  # the refused turn was not kept in the conversation
    assert len(served.servers[VL25]._engine.prompts[-1]["multi_modal_data"]["image"]) == 2  # the history's were


def test_overrides_that_are_not_a_json_object_are_refused_by_the_page(page: WebDriver, served: Served):
    sent = len(served.servers[VL25]._engine.prompts)
    options = page.find_element(By.CSS_SELECTOR, "#options summary")
    options.click()
    page.find_element(By.ID, "overrides").send_keys("[1, 2")
    options.click()
    page.find_element(By.ID, "prompt").send_keys("hello", Keys.ENTER)
    wait(page, lambda d: "Request JSON overrides" in d.find_element(By.ID, "status").text)
    assert len(served.servers[VL25]._engine.prompts) == sent
    assert page.find_element(By.ID, "prompt").get_attribute("value") == "hello"  # kept to fix and resend
