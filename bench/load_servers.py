"""The two servers the load benchmark compares, started from one Serve config file.

- ours: `qwen-vl-serve run` on a copy of the config that keeps one model (the one under
  test) and moves the HTTP port; everything else (ingress and deployment options, engine
  args and env) is the config's own, so the benchmark measures what users get.
- raw: vLLM's own OpenAI server (`python -m vllm.entrypoints.openai.api_server`) on the same
  checkpoint with the same engine args and engine env.
Both are process trees under one pid, so their CPU can be read from /proc (proc_cpu.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from proc_cpu import descendants

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 900


@dataclass
class Server:
    """One running server: its name in the report, its base URL and its process tree."""

    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def wait_ready(self, model: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Until `/health` is 200 and `model` is listed; raises with the log's tail if it died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{_tail(self.log)}")
            try:
                health = httpx.get(f"{self.url}/health", timeout=5)
                models = httpx.get(f"{self.url}/v1/models", timeout=5)
                if health.status_code == 200 and model in models.text:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise TimeoutError(f"{self.name} not ready after {timeout_s} s:\n{_tail(self.log)}")

    def stop(self) -> None:
        """SIGINT (a clean shutdown), then SIGKILL whatever of the tree is left."""
        pids = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _start(name: str, command: list[str], env: dict[str, str], log_dir: Path, url: str) -> Server:
    log = log_dir / f"{name}.log"
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True,
    )
    return Server(name, url, process, log)


def load_model_app(config_path: Path, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the whole config document, the application whose args serve `model`)."""
    document = yaml.safe_load(config_path.read_text())
    for application in document["applications"]:
        names = [m["name"] for m in application.get("args", {}).get("models", [])]
        if model in names:
            return document, application
    raise SystemExit(f"{config_path}: no application serves model {model!r}")


def model_checkpoint(config_path: Path, model: str) -> Path:
    """The model's local checkpoint, resolved as a replica would (`qwen-vl-serve download`)."""
    out = subprocess.run(
        [str(VENV_BIN / "qwen-vl-serve"), "download", str(config_path), "--model", model],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout
    for line in out.splitlines():
        if line.strip().startswith("ready at "):
            return Path(line.strip().removeprefix("ready at "))
    raise SystemExit(f"could not resolve {model}: {out}")


def start_ours(
    config_path: Path, model: str, port: int, metrics_port: int, log_dir: Path, env: dict[str, str]
) -> Server:
    """Our app, as the config has it, serving only `model` on `port`."""
    document, application = load_model_app(config_path, model)
    args = application["args"]
    args["models"] = [m for m in args["models"] if m["name"] == model]
    args["default_model"] = model
    document["applications"] = [application]
    document.setdefault("http_options", {}).update(host="127.0.0.1", port=port)
    config = Path(tempfile.mkdtemp(prefix="qvs-bench-")) / "serve_config.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    command = [str(VENV_BIN / "qwen-vl-serve"), "run", str(config), "--metrics-export-port", str(metrics_port)]
    return _start("ours", command, env, log_dir, f"http://127.0.0.1:{port}")


def engine_cli_args(engine_args: dict[str, Any]) -> list[str]:
    """vLLM's CLI flags for the config's engine_args (`max_num_seqs: 8` -> `--max-num-seqs 8`)."""
    flags = []
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, (dict, list)):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def start_raw(config_path: Path, model: str, checkpoint: Path, port: int, log_dir: Path) -> Server:
    """vLLM's own OpenAI server with the model's engine args and engine env."""
    _, application = load_model_app(config_path, model)
    spec = next(m for m in application["args"]["models"] if m["name"] == model)
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1",
        "--port", str(port), "--model", str(checkpoint), "--served-model-name", model,
        *engine_cli_args(spec.get("engine_args") or {}),
    ]
    env = {k: str(v) for k, v in (spec.get("engine_env") or {}).items()}
    return _start("raw", command, env, log_dir, f"http://127.0.0.1:{port}")
