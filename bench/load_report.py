"""Figures of the load benchmark: one round's statistics, medians over rounds, the tables and
the plot (requests/s and p50 latency against concurrency, ours beside raw vLLM)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from load_client import Outcome
from proc_cpu import CpuDelta

# (key, label, scale, unit): the per-server figures, in print order
FIGURES = [
    ("req_s", "requests/s", 1, ""),
    ("tok_s", "output tokens/s", 1, ""),
    ("ttft_p50", "TTFT p50", 1000, "ms"),
    ("ttft_p99", "TTFT p99", 1000, "ms"),
    ("itl_p50", "ITL p50", 1000, "ms"),
    ("itl_p99", "ITL p99", 1000, "ms"),
    ("e2e_p50", "latency p50", 1000, "ms"),
    ("e2e_p99", "latency p99", 1000, "ms"),
    ("serving_cpu_ms", "serving CPU/request", 1, "ms"),
    ("engine_cpu_ms", "engine CPU/request", 1, "ms"),
    ("errors", "errors", 1, ""),
]
HIGHER_IS_BETTER = {"req_s", "tok_s"}


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def round_stats(outcomes: list[Outcome], wall_s: float, cpu: CpuDelta) -> dict[str, float | None]:
    """One round's figures (latencies of successful requests only)."""
    ok = [o for o in outcomes if o.ok]
    stats: dict[str, float | None] = {
        "req_s": len(ok) / wall_s,
        "tok_s": sum(o.completion_tokens for o in ok) / wall_s,
        "serving_cpu_ms": 1000 * cpu.serving_s / max(len(outcomes), 1),
        "engine_cpu_ms": 1000 * cpu.engine_s / max(len(outcomes), 1),
        "errors": len(outcomes) - len(ok),
    }
    for program, seconds in cpu.by_program.items():
        stats[f"cpu_ms:{program}"] = 1000 * seconds / max(len(outcomes), 1)
    for key, values in (
        ("ttft", [o.ttft for o in ok if o.ttft is not None]),
        ("itl", [o.itl for o in ok if o.itl is not None]),
        ("e2e", [o.e2e for o in ok]),
    ):
        stats[f"{key}_p50"] = _percentile(values, 0.5)
        stats[f"{key}_p99"] = _percentile(values, 0.99)
    return stats


def median_stats(rounds: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each figure's median over rounds (errors: the total)."""
    merged: dict[str, float | None] = {}
    programs = sorted({k for r in rounds for k in r if k.startswith("cpu_ms:")})
    for key in [k for k, *_ in FIGURES] + programs:
        values = [r[key] for r in rounds if r.get(key) is not None]
        if key == "errors":
            merged[key] = sum(values)
        else:
            merged[key] = statistics.median(values) if values else None
    return merged


def _fmt(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value * scale:.1f}"


def detail_table(raw: dict, ours: dict) -> str:
    """Every figure of one (mode, concurrency): raw, ours, and ours/raw."""
    lines = [f"  {'':22}{'raw':>10}{'ours':>10}{'ours/raw':>10}"]
    for key, label, scale, unit in FIGURES:
        r, o = raw.get(key), ours.get(key)
        ratio = f"{o / r:.2f}x" if r and o is not None and key != "errors" else ""
        name = f"{label} ({unit})" if unit else label
        lines.append(f"  {name:22}{_fmt(r, scale):>10}{_fmt(o, scale):>10}{ratio:>10}")
    return "\n".join(lines)


def process_table(stats: dict) -> str:
    """Serving CPU per request by process role, largest first (where the serving path's cost is)."""
    parts = sorted(((v, k.removeprefix("cpu_ms:")) for k, v in stats.items()
                    if k.startswith("cpu_ms:") and v is not None and v >= 0.5), reverse=True)
    return "\n".join(f"    {ms:7.1f} ms  {program}" for ms, program in parts)


def summary_table(results: dict[str, dict[int, dict[str, dict]]]) -> str:
    """Markdown: per mode and concurrency, requests/s, p50 latency, serving CPU per request."""
    lines = [
        "| mode | concurrency | req/s raw | req/s ours | ours/raw | p50 latency raw -> ours (ms) "
        "| TTFT p50 raw -> ours (ms) | serving CPU/req raw -> ours (ms) | errors raw/ours |",
        "|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for mode, by_concurrency in results.items():
        for concurrency, sides in sorted(by_concurrency.items()):
            raw, ours = sides.get("raw", {}), sides.get("ours", {})
            ratio = f"{ours['req_s'] / raw['req_s']:.2f}x" if raw.get("req_s") and ours.get("req_s") else "-"
            lines.append(
                f"| {mode} | {concurrency} | {_fmt(raw.get('req_s'), 1)} | {_fmt(ours.get('req_s'), 1)} | {ratio} "
                f"| {_fmt(raw.get('e2e_p50'), 1000)} -> {_fmt(ours.get('e2e_p50'), 1000)} "
                f"| {_fmt(raw.get('ttft_p50'), 1000)} -> {_fmt(ours.get('ttft_p50'), 1000)} "
                f"| {_fmt(raw.get('serving_cpu_ms'), 1)} -> {_fmt(ours.get('serving_cpu_ms'), 1)} "
                f"| {raw.get('errors', '-')}/{ours.get('errors', '-')} |"
            )
    return "\n".join(lines)


def load_medians(path: Path) -> dict[str, dict[int, dict[str, dict]]]:
    """The medians of a `--json` file (JSON keys are strings; concurrencies back to ints)."""
    import json

    medians = json.loads(path.read_text())["medians"]
    return {mode: {int(c): sides for c, sides in by_c.items()} for mode, by_c in medians.items()}


def plot(results: dict[str, dict[int, dict[str, dict]]], path: Path) -> None:
    """requests/s and p50 latency against concurrency, one line per (server, mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, by_concurrency in results.items():
        concurrencies = sorted(by_concurrency)
        for side, color in (("raw", "tab:gray"), ("ours", "tab:blue")):
            style = "-" if mode == "stream" else "--"
            label = f"{'raw vLLM' if side == 'raw' else 'qwen-vl-serve'}, {mode}"
            req_s = [by_concurrency[c].get(side, {}).get("req_s") for c in concurrencies]
            p50 = [1000 * (by_concurrency[c].get(side, {}).get("e2e_p50") or 0) for c in concurrencies]
            throughput.plot(concurrencies, req_s, style, color=color, marker="o", label=label)
            latency.plot(concurrencies, p50, style, color=color, marker="o", label=label)
    for axis, title in ((throughput, "requests/s (higher is better)"), (latency, "p50 end-to-end latency, ms")):
        axis.set_xscale("log", base=2)
        levels = sorted({c for by_concurrency in results.values() for c in by_concurrency})
        axis.set_xticks(levels, [str(c) for c in levels])
        axis.set_xlabel("concurrent requests")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    throughput.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
