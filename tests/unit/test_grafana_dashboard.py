"""The Grafana dashboard in docs/ queries only metrics the API and the workers export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.observability import install_metrics
from worker import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "tuneforge.json"


def _exported_names() -> set[str]:
    """Every sample name the exporters can produce (counters' _total, histograms' _bucket...)."""
    api_registry: CollectorRegistry = install_metrics(FastAPI())
    worker_metrics = [
        metrics.JOBS,
        metrics.TRIALS,
        metrics.HEARTBEATS,
        metrics.EPOCH_SECONDS,
        metrics.TRIAL_SECONDS,
        metrics.PREDICT_SECONDS,
    ]
    families = [*api_registry.collect(), *(f for m in worker_metrics for f in m.describe())]
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names = {f.name + suffix for f in families for suffix in suffixes.get(f.type, [""])}
    return names | {"tuneforge_queue_depth"}  # read from the broker at scrape time (worker.metrics)


def test_every_panel_queries_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"tuneforge_\w+", target["expr"])
    }
    assert len(dashboard["panels"]) >= 8
    assert queried and queried <= _exported_names(), queried - _exported_names()
