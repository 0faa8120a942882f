"""Model sources: which hub, which revision, which cache; clear errors, no real hub traffic.

Hub clients run against loopback only: either a closed port (an unreachable hub) or a
local server answering 404 to everything (an id the hub does not have). The subprocess
also routes any other HTTP(S) through a closed loopback proxy, so nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.checkpoints import sources
from deployments.config import ModelConfig
from deployments.checkpoints.sources import ModelSourceError, resolve_model_path

from tests.helpers import ROOT, free_port


def _model(source: str, revision: str | None = None) -> ModelConfig:
    return ModelConfig(name="m", family="qwen2-vl", source=source, revision=revision)


@pytest.fixture
def fake_hubs(monkeypatch, tmp_path) -> dict[str, list]:
    """Both hub clients replaced by recorders (in process, no network)."""
    calls: dict[str, list] = {"modelscope": [], "hf": []}

    def recorder(hub):
        def snapshot_download(model_id, **kwargs):
            calls[hub].append((model_id, kwargs))
            return str(tmp_path / hub / model_id)

        return snapshot_download

    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=recorder("modelscope")))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", recorder("hf"))
    monkeypatch.setenv("QWEN_VL_SERVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(sources.DEFAULT_HUB_ENV, raising=False)
    return calls


@pytest.mark.parametrize(
    ("source", "hub"),
    [("modelscope://Qwen/Qwen2-VL-2B-Instruct", "modelscope"), ("hf://Qwen/Qwen2-VL-2B-Instruct", "hf")],
)
def test_hub_sources_pin_the_revision_into_the_shared_cache(fake_hubs, tmp_path, source, hub):
    path = resolve_model_path(_model(source, revision="abc123"))
    ((model_id, kwargs),) = fake_hubs[hub]
    assert model_id == "Qwen/Qwen2-VL-2B-Instruct"
    assert kwargs["revision"] == "abc123"
    assert kwargs["cache_dir"] == str(tmp_path / "cache" / hub)
    assert path == tmp_path / hub / "Qwen/Qwen2-VL-2B-Instruct"


def test_bare_ids_go_to_the_configured_default_hub(fake_hubs, monkeypatch):
    resolve_model_path(_model("Qwen/Qwen2-VL-2B-Instruct"))
    assert len(fake_hubs["modelscope"]) == 1  # ModelScope unless configured
    monkeypatch.setenv(sources.DEFAULT_HUB_ENV, "hf")
    resolve_model_path(_model("Qwen/Qwen2-VL-2B-Instruct"))
    assert len(fake_hubs["hf"]) == 1
    monkeypatch.setenv(sources.DEFAULT_HUB_ENV, "gitee")
    with pytest.raises(ModelSourceError, match="QWEN_VL_SERVE_DEFAULT_HUB='gitee': unknown hub"):
        resolve_model_path(_model("Qwen/Qwen2-VL-2B-Instruct"))


def test_local_directories_are_used_as_is(tmp_path, fake_hubs):
    assert resolve_model_path(_model(str(tmp_path))) == tmp_path
    with pytest.raises(ModelSourceError, match="no such local directory"):
        resolve_model_path(_model(str(tmp_path / "missing")))
    assert fake_hubs == {"modelscope": [], "hf": []}


def test_progress_lines_go_to_the_replica_log(caplog):
    bar_class = sources._logged_tqdm()
    with caplog.at_level("INFO", logger="ray.serve"):
        bar = bar_class(total=100, desc="weights", mininterval=0)
        bar.update(50)
        bar.close()
        callback = sources._LoggedProgress("model.safetensors", 10)
        callback.update(10)
        callback.end()
    text = caplog.text
    assert "weights" in text and "50/100" in text
    assert "Downloading model.safetensors" in text



class _NotFound(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = json.dumps({"error": "Repository not found", "Code": 10010205001, "Message": "not exist"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _answer

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


@pytest.fixture
def not_found_hub() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _resolve_in_subprocess(source: str, hub_port: int, tmp_path: Path) -> str:
    """Resolve `source` in a fresh interpreter whose hubs (and any proxy) are on loopback."""
    proxy = f"http://127.0.0.1:{free_port()}"  # closed: anything not for the hub fails
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": f"http://127.0.0.1:{hub_port}",
        "MODELSCOPE_ENDPOINT": f"http://127.0.0.1:{hub_port}",
        "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
        "QWEN_VL_SERVE_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
    }
    script = (
        "from deployments.config import ModelConfig\n"
        "from deployments.checkpoints.sources import resolve_model_path, ModelSourceError\n"
        "try:\n"
        f"    resolve_model_path(ModelConfig(name='m', family='qwen2-vl', source={source!r}))\n"
        "except ModelSourceError as exc:\n"
        "    print('ModelSourceError:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    return done.stdout


@pytest.mark.parametrize("scheme", ["hf", "modelscope"])
def test_unreachable_hub_is_said_plainly(scheme, tmp_path):
    port = free_port()  # nothing listens there
    out = _resolve_in_subprocess(f"{scheme}://Qwen/Qwen2-VL-2B-Instruct", port, tmp_path)
    assert "ModelSourceError" in out, out
    assert f"127.0.0.1:{port} is unreachable" in out


@pytest.mark.parametrize("scheme", ["hf", "modelscope"])
def test_unknown_id_is_said_plainly(scheme, tmp_path, not_found_hub):
    out = _resolve_in_subprocess(f"{scheme}://Qwen/No-Such-Model", not_found_hub, tmp_path)
    assert "ModelSourceError" in out, out
    assert "'Qwen/No-Such-Model'" in out and "no such model id or revision" in out


def test_offline_hf_without_cache_is_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # also the test session's guard
    monkeypatch.setenv("QWEN_VL_SERVE_CACHE", str(tmp_path))
    message = sources._explain("hf", "'Qwen/X'", RuntimeError("offline"))
    assert "HF_HUB_OFFLINE is set" in message
