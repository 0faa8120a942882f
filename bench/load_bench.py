"""Load benchmark: our Serve app against raw vLLM's OpenAI server, side by side, one run.

Both servers run the same checkpoint with the same engine args and env (taken from the
Serve config, default `serve_config.cpu.yaml`, one model: `--model`). They are driven
alternately, round by round (raw first in even rounds, ours first in odd ones), at each
concurrency, streaming and not; the figures are medians over rounds and ours/raw ratios,
since absolute times on a shared machine swing between runs. See docs/benchmarks.md.

    python bench/load_bench.py                  # 3 rounds at c = 1, 8, 32, 64, stream + whole
    python bench/load_bench.py --quick          # CI: 1 round at c = 1, 8, a few requests
    python bench/load_bench.py --ours-env RAY_SERVE_ENABLE_HA_PROXY=1 --json out.json --plot out.png

Exits 1 when any request failed (no timing is asserted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from load_client import image_data_urls, run_load
from load_report import detail_table, median_stats, plot, process_table, round_stats, summary_table
from load_servers import ROOT, Server, model_checkpoint, start_ours, start_raw
from proc_cpu import cpu_between, snapshot

WARMUP_REQUESTS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "serve_config.cpu.yaml")
    parser.add_argument("--model", default="tiny-qwen2-vl")
    parser.add_argument("--concurrency", default="1,8,32,64", help="comma-separated levels")
    parser.add_argument("--modes", default="stream,whole", help="stream, whole, or both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=64, help="per round: max(this, 4 x concurrency)")
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--ours-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for our server (e.g. RAY_SERVE_ENABLE_HA_PROXY=1)")
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here (needs matplotlib)")
    parser.add_argument("--quick", action="store_true", help="CI: c = 1, 8; one round; 8 requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.rounds, args.requests = "1,8", 1, 8
    return args


def _requests_per_round(args: argparse.Namespace, concurrency: int) -> int:
    return args.requests if args.quick else max(args.requests, 4 * concurrency)


def _measure(server: Server, args: argparse.Namespace, images: list[str], concurrency: int, stream: bool) -> dict:
    before = snapshot(server.process.pid)
    outcomes, wall = asyncio.run(
        run_load(server.url, args.model, images, concurrency, args.output_tokens, stream)
    )
    stats = round_stats(outcomes, wall, cpu_between(before, snapshot(server.process.pid)))
    errors = sorted({o.error for o in outcomes if not o.ok})
    if errors:
        print(f"    {server.name}: errors {errors}", flush=True)
    return stats


def benchmark(servers: dict[str, Server], args: argparse.Namespace) -> tuple[dict, dict]:
    """(medians by mode/concurrency/side, every round's figures)."""
    modes = [m.strip() for m in args.modes.split(",")]
    levels = [int(c) for c in args.concurrency.split(",")]
    medians: dict = {}
    rounds: dict = {}
    seed = 1_000  # every request of the run gets its own picture
    for mode in modes:
        for concurrency in levels:
            count = _requests_per_round(args, concurrency)
            per_side: dict[str, list[dict]] = {name: [] for name in servers}
            for index in range(args.rounds):
                order = list(servers) if index % 2 == 0 else list(reversed(servers))
                for name in order:
                    images = image_data_urls(count, seed=seed)
                    seed += count
                    per_side[name].append(_measure(servers[name], args, images, concurrency, mode == "stream"))
                    print(f"  {mode} c={concurrency} round {index + 1} {name}: "
                          f"{per_side[name][-1]['req_s']:.1f} req/s", flush=True)
            medians.setdefault(mode, {})[concurrency] = {n: median_stats(r) for n, r in per_side.items()}
            rounds.setdefault(mode, {})[concurrency] = per_side
            print(f"\n{mode}, concurrency {concurrency} ({args.rounds} rounds x {count} requests, medians)")
            print(detail_table(medians[mode][concurrency]["raw"], medians[mode][concurrency]["ours"]), flush=True)
            for name in servers:
                print(f"  {name}: serving CPU per request by process (medians)")
                print(process_table(medians[mode][concurrency][name]), flush=True)
    return medians, rounds


def _warm_up(servers: dict[str, Server], args: argparse.Namespace) -> None:
    """Compile/caches warm on both sides before anything is timed."""
    for server in servers.values():
        for stream in (False, True):
            asyncio.run(run_load(server.url, args.model, image_data_urls(WARMUP_REQUESTS, seed=stream),
                                 4, args.output_tokens, stream))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    log_dir = Path(tempfile.mkdtemp(prefix="qvs-load-bench-"))
    print(f"logs: {log_dir}", flush=True)
    checkpoint = model_checkpoint(args.config, args.model)
    ours_env = dict(item.split("=", 1) for item in args.ours_env)
    servers: dict[str, Server] = {}
    try:
        servers["raw"] = start_raw(args.config, args.model, checkpoint, _free_port(), log_dir)
        servers["ours"] = start_ours(args.config, args.model, _free_port(), _free_port(), log_dir, ours_env)
        for server in servers.values():
            server.wait_ready(args.model)
            print(f"{server.name} ready at {server.url}", flush=True)
        _warm_up(servers, args)
        started = time.time()
        medians, rounds = benchmark(servers, args)
    finally:
        for server in servers.values():
            server.stop()
    print(f"\n{args.model}, {args.output_tokens} output tokens, one 320x240 PNG per request; "
          f"ours env {ours_env or '{}'}; {time.time() - started:.0f} s, load average {os.getloadavg()[0]:.1f}")
    print(summary_table(medians))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "medians": medians, "rounds": rounds}, indent=1))
    if args.plot:
        plot(medians, args.plot)
    errors = sum(s.get("errors", 0) for by_c in medians.values() for sides in by_c.values() for s in sides.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
