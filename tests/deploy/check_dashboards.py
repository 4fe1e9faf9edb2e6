#!/usr/bin/env python3
"""Grafana dashboards (dashboards/*.json), checked without a server:

  - the JSON files are what dashboards/generate.py writes (no hand edits drifting away);
  - one dashboard per service (ingest, decode, fanout) plus the overview, unique uids;
  - every panel and target uses the `datasource` variable, which the provisioning resolves to
    the Prometheus data source; the only other variable used is $__rate_interval;
  - every metric name in every expression is exported by the code (probes, common/metrics) or
    by Prometheus itself (`up`); no `vector(...)` fallback that would fake data;
  - every expression parses: they are fed to `promtool check rules` as recording rules;
  - the topics the issue asks for are covered: throughput, lag (upstream time -> stored ->
    delivered, p50/p99; receive -> stored; stored -> fanout), drops by reason, reconnects, subscribers, replay sessions, slow-client closes,
    RocksDB size and oldest event, process CPU and memory of each service.

usage: check_dashboards.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_common as dc  # noqa: E402

ROOT = dc.source_root()
BOARDS = {"overview": "jetstream-overview.json", "ingest": "jetstream-ingest.json",
          "decode": "jetstream-decode.json", "fanout": "jetstream-fanout.json"}

# topic -> (dashboard, regex an expression of it must match)
TOPICS = {
    "throughput: ingest frames/s": ("ingest", r"rate\(jetstream_ingest_frames_received_total"),
    "throughput: decode events stored/s": ("decode", r"rate\(jetstream_decode_events_stored_total"),
    "throughput: fanout events delivered/s": ("fanout", r"rate\(jetstream_events_delivered_total"),
    "throughput: overview pipeline": ("overview", r"jetstream_events_delivered_total"),
    "lag: since last upstream frame": ("overview", r"jetstream_ingest_seconds_since_last_frame"),
    "lag: receive -> stored": ("overview", r"consumer_event_processing_duration_seconds_bucket"),
    "lag: stored -> fanout": ("overview", r"jetstream_decode_log_time_us\{end=\"newest\"\}.*jetstream_fanout_head_time_us"),
    "lag: upstream time -> stored (overview)": ("overview", r"histogram_quantile\(0\.99, .*rate\(jetstream_decode_upstream_lag_seconds_bucket"),
    "lag: stored -> delivered (overview)": ("overview", r"histogram_quantile\(0\.99, .*rate\(jetstream_fanout_delivery_lag_seconds_bucket"),
    "lag: upstream time -> stored p50": ("decode", r"histogram_quantile\(0\.5, .*rate\(jetstream_decode_upstream_lag_seconds_bucket"),
    "lag: upstream time -> stored p99": ("decode", r"histogram_quantile\(0\.99, .*rate\(jetstream_decode_upstream_lag_seconds_bucket"),
    "lag: stored -> delivered p50": ("fanout", r"histogram_quantile\(0\.5, .*rate\(jetstream_fanout_delivery_lag_seconds_bucket"),
    "lag: stored -> delivered p99": ("fanout", r"histogram_quantile\(0\.99, .*rate\(jetstream_fanout_delivery_lag_seconds_bucket"),
    "drops by reason": ("decode", r"sum by \(reason\) \(rate\(jetstream_decode_drops_total"),
    "reconnects by reason": ("ingest", r"by \(reason\) \(increase\(jetstream_ingest_upstream_reconnects_total"),
    "subscribers": ("fanout", r"jetstream_subscribers_connected"),
    "replay sessions": ("fanout", r"jetstream_fanout_replay_sessions"),
    "slow-client closes": ("fanout", r"jetstream_fanout_client_closes_total\{reason=\"too_slow\"\}"),
    "RocksDB size": ("decode", r"jetstream_decode_log_disk_bytes"),
    "oldest event": ("decode", r"jetstream_decode_log_time_us\{end=\"oldest\"\}"),
    "overview CPU by service": ("overview", r"process_cpu_seconds_total.*jetstream_build_info"),
    "overview memory by service": ("overview", r"process_resident_memory_bytes.*jetstream_build_info"),
}


def panels_of(board: dict):
    stack = list(board.get("panels", []))
    while stack:
        p = stack.pop(0)
        stack.extend(p.get("panels", []))
        yield p


def main() -> int:
    f = dc.Failures("dashboards")
    gen = subprocess.run([sys.executable, str(ROOT / "dashboards" / "generate.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    f.check(gen.returncode == 0, f"dashboards/*.json are not what generate.py writes: {gen.stdout.strip()}")

    known = dc.expand_metric_names(dc.metric_names()) | dc.SYNTHETIC_METRICS
    f.check(len(known) > 40, f"only {len(known)} metric names found in the sources")
    provisioning = dc.load_yaml(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml")
    f.check(any(d.get("type") == "prometheus" and d.get("isDefault") for d in provisioning["datasources"]),
            "the provisioned Prometheus data source must be the default (the dashboards' variable picks it)")

    exprs_by_service: dict[str, list[str]] = {}
    all_exprs: list[tuple[str, str, str]] = []
    uids = set()
    for service, name in BOARDS.items():
        path = ROOT / "dashboards" / name
        if not f.check(path.is_file(), f"dashboards/{name} is missing"):
            continue
        try:
            board = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            f.fail(f"dashboards/{name}: {e}")
            continue
        f.check(board.get("uid") not in uids, f"dashboards/{name}: duplicate uid {board.get('uid')}")
        uids.add(board.get("uid"))
        variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        f.check(variables.get("datasource", {}).get("type") == "datasource"
                and variables["datasource"].get("query") == "prometheus",
                f"dashboards/{name}: needs a `datasource` variable of type prometheus")
        exprs = []
        ids = set()
        for panel in panels_of(board):
            title = panel.get("title", "?")
            f.check(panel.get("id") not in ids, f"{name} / {title}: duplicate panel id")
            ids.add(panel.get("id"))
            if panel.get("type") == "row":
                continue
            f.check(panel.get("datasource", {}).get("uid") == "${datasource}", f"{name} / {title}: datasource")
            targets = panel.get("targets", [])
            f.check(bool(targets), f"{name} / {title}: no query")
            for t in targets:
                expr = t.get("expr", "")
                f.check(t.get("datasource", {}).get("uid") == "${datasource}", f"{name} / {title}: target datasource")
                rest = expr.replace("$__rate_interval", "")
                f.check("$" not in rest, f"{name} / {title}: unknown variable in {expr}")
                f.check("vector(" not in expr, f"{name} / {title}: vector(...) fakes data: {expr}")
                for metric in dc.promql_metric_names(expr):
                    f.check(metric in known, f"{name} / {title}: metric {metric} is not exported by the code")
                exprs.append(expr)
                all_exprs.append((name, title, expr))
        exprs_by_service[service] = exprs
        if service != "overview":
            process = [e for e in exprs if "process_" in e]
            for metric in ("process_cpu_seconds_total", "process_resident_memory_bytes"):
                f.check(any(metric in e and f'jetstream_build_info{{service="{service}"}}' in e for e in process),
                        f"{name}: no {metric} panel restricted to {service}")

    for topic, (service, pattern) in TOPICS.items():
        f.check(any(re.search(pattern, e) for e in exprs_by_service.get(service, [])),
                f"topic '{topic}' is not on the {service} dashboard (/{pattern}/)")

    # Syntax: every expression as a recording rule for promtool.
    promtool = dc.which("promtool")
    if f.check(promtool is not None, "promtool is missing: run scripts/install-deps.sh (Debian package prometheus)"):
        import yaml
        rules = [{"record": f"dashboard:check_{i}", "expr": e.replace("$__rate_interval", "5m")}
                 for i, (_, _, e) in enumerate(all_exprs)]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as tmp:
            yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, tmp)
        out = subprocess.run([promtool, "check", "rules", tmp.name], capture_output=True, text=True, timeout=60)
        Path(tmp.name).unlink()
        f.check(out.returncode == 0, f"an expression does not parse: {out.stdout}{out.stderr}")
    print(f"{len(all_exprs)} expressions in {len(uids)} dashboards")
    return f.finish()


if __name__ == "__main__":
    sys.exit(main())
