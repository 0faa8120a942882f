"""The Grafana dashboard of qwen-vl-serve, as code.

    python -m k8s.dashboard            # rewrite k8s/grafana-dashboard.json and its ConfigMap
    python -m k8s.dashboard --check    # exit 1 if either checked-in file has drifted

Panels are small dataclasses rendered to Grafana JSON, so they are reviewed as code and
tested: tests/e2e/test_metrics.py runs every panel's query against a real Prometheus that
scraped the running app, and fails when one returns nothing. Series come from Ray's metrics
export: the ingress's `ray_qvs_*` (ingress/metrics.py), Serve's `ray_serve_*` and vLLM's
engine metrics `ray_vllm_*` (vLLM's `vllm:*`, renamed by Ray). `$model` filters our series
by `model` and vLLM's by `model_name`; `$datasource` picks the Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from k8s.rayservice import LiteralDumper

HERE = Path(__file__).parent
DASHBOARD_JSON = HERE / "grafana-dashboard.json"
CONFIGMAP_YAML = HERE / "grafana-dashboard-configmap.yaml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
APP = 'application="qwen-vl"'
MODEL = 'model=~"$model"'
ENGINE_MODEL = 'model_name=~"$model"'
RATE = "$__rate_interval"
_WIDTH, _HEIGHT = 8, 8  # three panels per row on Grafana's 24-column grid


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""

    def to_json(self, ref_id: str) -> dict[str, Any]:
        return {"datasource": DATASOURCE, "expr": self.expr, "legendFormat": self.legend, "refId": ref_id}


@dataclass(frozen=True)
class Panel:
    """A time series panel."""

    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    description: str = ""

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        return {
            "id": panel_id,
            "type": "timeseries",
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": _HEIGHT, "w": _WIDTH, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": self.unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [t.to_json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
        }


@dataclass(frozen=True)
class Row:
    """A titled group of panels."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    """The whole dashboard: rows of panels plus the datasource and model variables."""

    uid: str
    title: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = field(default=("qwen-vl-serve", "ray", "vllm"))

    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row.panels]

    def to_json(self) -> dict[str, Any]:
        rendered: list[dict[str, Any]] = []
        y, next_id = 0, 1
        for row in self.rows:
            rendered.append({
                "id": next_id, "type": "row", "title": row.title, "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [],
            })
            next_id, y = next_id + 1, y + 1
            for i, panel in enumerate(row.panels):
                rendered.append(panel.to_json(next_id, (i % 3) * _WIDTH, y + (i // 3) * _HEIGHT))
                next_id += 1
            y += -(-len(row.panels) // 3) * _HEIGHT
        return {
            "uid": self.uid,
            "title": self.title,
            "tags": list(self.tags),
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "panels": rendered,
            "templating": {"list": [_datasource_variable(), _model_variable()]},
            "annotations": {"list": []},
        }


def _datasource_variable() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1}


def _model_variable() -> dict[str, Any]:
    query = "label_values(ray_qvs_requests_total, model)"
    return {
        "name": "model", "label": "Model", "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": "model"}, "definition": query,
        "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "hide": 0, "refresh": 2,
    }


def _quantiles(metric: str, by: str, selector: str, legend: str) -> tuple[Target, ...]:
    """p50 and p95 of a histogram, per `by`."""
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{int(q * 100)} {legend}",
        )
        for q in (0.5, 0.95)
    )


def _rate(metric: str, by: str, selector: str, legend: str) -> Target:
    return Target(f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))", legend)


def _ratio(hits: str, queries: str, by: str, selector: str, legend: str) -> Target:
    return Target(
        f"sum by ({by}) (rate({hits}{{{selector}}}[{RATE}])) / sum by ({by}) (rate({queries}{{{selector}}}[{RATE}]))",
        legend,
    )


def _mean(metric: str, by: str, selector: str, legend: str) -> Target:
    return Target(
        f"sum by ({by}) (rate({metric}_sum{{{selector}}}[{RATE}])) / sum by ({by}) (rate({metric}_count{{{selector}}}[{RATE}]))",
        legend,
    )


TRAFFIC = Row("Traffic", (
    Panel("Requests per second", (
        _rate("ray_qvs_requests_total", "model, status_class, stream", MODEL, "{{model}} {{status_class}} stream={{stream}}"),
    ), "reqps", "Chat completion requests at the ingress, by status class."),
    Panel("Errors per second by type", (
        _rate("ray_qvs_request_errors_total", "model, status_class, error_type", MODEL, "{{model}} {{status_class}} {{error_type}}"),
    ), "reqps", "Failed requests by OpenAI error code (in-band stream errors included)."),
    Panel("Backpressure rejections", (
        _rate("ray_qvs_backpressure_rejections_total", "model", MODEL, "{{model}}"),
    ), "reqps", "Requests refused with 503 overloaded: a model deployment's queue was full."),
    Panel("HTTP requests by route (Serve proxy)", (
        _rate("ray_serve_num_http_requests_total", "route, status_code", APP, "{{route}} {{status_code}}"),
    ), "reqps"),
))

LATENCY = Row("Latency", (
    Panel("End-to-end latency (ingress)", _quantiles(
        "ray_qvs_request_latency_seconds", "model, stream", MODEL, "{{model}} stream={{stream}}"), "s"),
    Panel("Time to first token (ingress)", _quantiles(
        "ray_qvs_time_to_first_token_seconds", "model", MODEL, "{{model}}"), "s",
        "Request arrival to the first streamed token, as the client sees it."),
    Panel("Inter-token latency (ingress)", _quantiles(
        "ray_qvs_inter_token_latency_seconds", "model", MODEL, "{{model}}"), "s",
        "Mean gap between a stream's tokens, per request."),
    Panel("Time to first token (engine)", _quantiles(
        "ray_vllm_time_to_first_token_seconds", "model_name", ENGINE_MODEL, "{{model_name}}"), "s"),
    Panel("Inter-token latency (engine)", _quantiles(
        "ray_vllm_inter_token_latency_seconds", "model_name", ENGINE_MODEL, "{{model_name}}"), "s"),
))

TOKENS = Row("Tokens", (
    Panel("Prompt tokens per second", (
        _rate("ray_qvs_prompt_tokens_total", "model", MODEL, "{{model}}"),), "short"),
    Panel("Completion tokens per second", (
        _rate("ray_qvs_completion_tokens_total", "model", MODEL, "{{model}}"),), "short"),
    Panel("Engine tokens per second", (
        _rate("ray_vllm_prompt_tokens_total", "model_name", ENGINE_MODEL, "prompt {{model_name}}"),
        _rate("ray_vllm_generation_tokens_total", "model_name", ENGINE_MODEL, "generated {{model_name}}"),
    ), "short"),
))

MEDIA = Row("Media", (
    Panel("Images and videos per request (mean)", (
        _mean("ray_qvs_media_items_per_request", "model, kind", MODEL, "{{model}} {{kind}}"),), "short"),
    Panel("Media fetch time", _quantiles(
        "ray_qvs_media_fetch_seconds", "kind, source", "", "{{kind}} {{source}}"), "s"),
    Panel("Media decode time", _quantiles("ray_qvs_media_decode_seconds", "kind", "", "{{kind}}"), "s"),
    Panel("Media bytes per second", (
        _rate("ray_qvs_media_bytes_total", "kind, source", "", "{{kind}} {{source}}"),), "Bps"),
    Panel("Media refusals by reason", (
        _rate("ray_qvs_media_refusals_total", "kind, reason", "", "{{kind}} {{reason}}"),), "reqps"),
))

ENGINE = Row("Engine (vLLM)", (
    Panel("KV cache usage", (
        Target(f"max by (model_name) (ray_vllm_kv_cache_usage_perc{{{ENGINE_MODEL}}})", "{{model_name}}"),
    ), "percentunit"),
    Panel("Running and waiting requests", (
        Target(f"sum by (model_name) (ray_vllm_num_requests_running{{{ENGINE_MODEL}}})", "running {{model_name}}"),
        Target(f"sum by (model_name) (ray_vllm_num_requests_waiting{{{ENGINE_MODEL}}})", "waiting {{model_name}}"),
    ), "short"),
    Panel("Prefix cache hit rate", (
        _ratio("ray_vllm_prefix_cache_hits_total", "ray_vllm_prefix_cache_queries_total",
               "model_name", ENGINE_MODEL, "{{model_name}}"),), "percentunit"),
    Panel("Multimodal cache hit rate", (
        _ratio("ray_vllm_mm_cache_hits_total", "ray_vllm_mm_cache_queries_total",
               "model_name", ENGINE_MODEL, "{{model_name}}"),), "percentunit"),
))

SERVE = Row("Serve replicas and autoscaling", (
    Panel("Healthy replicas", (
        Target(f"sum by (deployment) (ray_serve_deployment_replica_healthy{{{APP}}})", "{{deployment}}"),),
        "short"),
    Panel("Autoscaling target replicas", (
        Target(f"max by (deployment) (ray_serve_autoscaling_target_replicas{{{APP}}})", "{{deployment}}"),),
        "short"),
    Panel("Ongoing requests at replicas", (
        Target(f"sum by (deployment) (ray_serve_num_ongoing_requests_at_replicas{{{APP}}})", "{{deployment}}"),),
        "short"),
    Panel("Replica processing latency", _quantiles(
        "ray_serve_deployment_processing_latency_ms", "deployment", APP, "{{deployment}}"), "ms"),
))

DASHBOARD = Dashboard(
    uid="qwen-vl-serve",
    title="qwen-vl-serve",
    rows=(TRAFFIC, LATENCY, TOKENS, MEDIA, ENGINE, SERVE),
)


def dashboard_json(dashboard: Dashboard = DASHBOARD) -> str:
    return json.dumps(dashboard.to_json(), indent=2, sort_keys=True) + "\n"


def configmap_yaml(dashboard: Dashboard = DASHBOARD) -> str:
    """The dashboard as a ConfigMap that Grafana's sidecar picks up (label grafana_dashboard)."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "qwen-vl-serve-dashboard",
            "labels": {"grafana_dashboard": "1", "app.kubernetes.io/name": "qwen-vl-serve"},
        },
        "data": {"qwen-vl-serve.json": dashboard_json(dashboard)},
    }
    header = "# GENERATED by `python -m k8s.dashboard` from k8s/dashboard.py: do not edit by hand.\n"
    return header + yaml.dump(configmap, Dumper=LiteralDumper, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are out of date")
    args = parser.parse_args(argv)
    outputs = {DASHBOARD_JSON: dashboard_json(), CONFIGMAP_YAML: configmap_yaml()}
    if args.check:
        stale = [str(p) for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python -m k8s.dashboard", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
