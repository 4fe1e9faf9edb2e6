#!/usr/bin/env python3
"""Writes the Grafana dashboards of this folder (one per service plus an overview).

    python3 dashboards/generate.py          # rewrite the JSON files
    python3 dashboards/generate.py --check  # exit 1 if a JSON file differs from what this writes

The JSON files are what Grafana loads (deploy/grafana/provisioning, or import them by hand);
this script is where they are edited. Every expression uses only metric names the services
export (tests/deploy/check_dashboards.py) and returns data against a running stack
(tests/deploy/live_stack_test.py). Rates use Grafana's $__rate_interval; the data source is the
`datasource` variable. Per-service process metrics are picked by joining on
jetstream_build_info{service=...}, so no job naming convention is assumed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"


class Board:
    def __init__(self, uid: str, title: str, description: str):
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def _place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        self.panels.append({"type": "row", "id": self.next_id, "title": title, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.next_id += 1
        self.y += 1

    def _targets(self, queries):
        out = []
        for i, (expr, legend) in enumerate(queries):
            out.append({"datasource": DS, "refId": chr(ord("A") + i), "expr": expr,
                        "legendFormat": legend, "range": True, "instant": False})
        return out

    def timeseries(self, title: str, queries, unit: str = "short", description: str = "",
                   w: int = 12, h: int = 8, stack: bool = False) -> None:
        self.panels.append({
            "type": "timeseries", "id": self.next_id, "title": title, "description": description,
            "datasource": DS, "gridPos": self._place(w, h), "targets": self._targets(queries),
            "fieldConfig": {"defaults": {"unit": unit, "min": 0 if unit not in ("none",) else None,
                                         "custom": {"drawStyle": "line", "lineWidth": 1,
                                                    "fillOpacity": 10 if stack else 0,
                                                    "showPoints": "never",
                                                    "stacking": {"mode": "normal" if stack else "none"}}},
                            "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
        })
        self.next_id += 1

    def stat(self, title: str, expr: str, unit: str = "short", description: str = "",
             w: int = 6, h: int = 4, legend: str = "", thresholds=None) -> None:
        steps = thresholds or [{"color": "green", "value": None}]
        self.panels.append({
            "type": "stat", "id": self.next_id, "title": title, "description": description,
            "datasource": DS, "gridPos": self._place(w, h),
            "targets": self._targets([(expr, legend)]),
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                        "textMode": "auto", "orientation": "auto"},
        })
        self.next_id += 1

    def json(self) -> dict:
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["jetstream"], "editable": True, "graphTooltip": 1, "schemaVersion": 39,
            "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
            "timepicker": {}, "timezone": "", "fiscalYearStartMonth": 0, "liveNow": False,
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["jetstream"], "asDropdown": True,
                       "title": "Jetstream", "includeVars": False, "keepTime": True}],
            "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource",
                                     "query": "prometheus", "current": {}, "hide": 0,
                                     "includeAll": False, "multi": False, "options": [],
                                     "refresh": 1, "regex": "", "skipUrlSync": False}]},
            "panels": self.panels,
        }


def of_service(metric: str, service: str, group_left: str = "") -> str:
    """`metric` restricted to the targets of one service (joined on jetstream_build_info)."""
    gl = f" group_left ({group_left})" if group_left else ""
    return f'{metric} * on (job, instance){gl} jetstream_build_info{{service="{service}"}}'


def process_rows(b: Board, service: str) -> None:
    b.row("Process")
    b.timeseries("CPU (cores)", [(f"sum by (instance) ({of_service(f'rate(process_cpu_seconds_total[{RI}])', service)})",
                                  "{{instance}}")], unit="short", w=8,
                 description="process_cpu_seconds_total: user + system CPU seconds per second.")
    b.timeseries("Resident memory", [(f"sum by (instance) ({of_service('process_resident_memory_bytes', service)})",
                                      "{{instance}}")], unit="bytes", w=8)
    b.timeseries("Open file descriptors", [(f"sum by (instance) ({of_service('process_open_fds', service)})",
                                            "{{instance}}")], unit="short", w=8,
                 description="Sockets (clients, ZeroMQ, metrics) and files (RocksDB).")
    b.stat("Uptime", f"min(time() - {of_service('process_start_time_seconds', service)})", unit="s", w=12)
    b.stat("Version", f'count by (version) (jetstream_build_info{{service="{service}"}})', unit="short",
           legend="{{version}}", w=12, description="Instances per version (jetstream_build_info).")


LAG_STORED_TO_FANOUT = ('clamp_min(scalar(max(jetstream_decode_log_time_us{end="newest"})) - '
                        'max by (instance) (jetstream_fanout_head_time_us), 0) / 1e6')
P99_RECEIVE_TO_STORED = ("histogram_quantile(0.99, sum by (le) "
                         f"(rate(consumer_event_processing_duration_seconds_bucket[{RI}])))")


def quantile(q: float, histogram: str, by: str = "") -> str:
    """The q-quantile of a histogram family over all its series (or per `by` label)."""
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket[{RI}])))"


# The lag chain: the upstream event's own `time` -> stored in decode's log (decode), then decode's
# sequencing time `time_us` -> queued to a client (fanout, sampled once per send).
UPSTREAM_TO_STORED = "jetstream_decode_upstream_lag_seconds"
STORED_TO_DELIVERED = "jetstream_fanout_delivery_lag_seconds"


def ingest() -> Board:
    b = Board("jetstream-ingest", "Jetstream / ingest",
              "jetstream-ingest: the upstream websocket (subscribeRepos) and the frames it publishes to decode.")
    b.row("Upstream")
    b.stat("Connected upstream", "max(jetstream_ingest_upstream_connected)",
           thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}])
    b.stat("Seconds since last frame", "max(jetstream_ingest_seconds_since_last_frame)", unit="s",
           thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 30},
                       {"color": "red", "value": 120}])
    b.stat("Last upstream seq", "max(jetstream_ingest_last_upstream_seq)", unit="none")
    b.stat("Frames/s", f"sum(rate(jetstream_ingest_frames_received_total[{RI}]))", unit="short")
    b.timeseries("Connection state", [("max by (state) (jetstream_ingest_upstream_state)", "{{state}}")],
                 unit="none", description="1 for the current state: idle (waiting for decode's first resume), "
                                          "connecting, connected, backoff.")
    b.timeseries("Reconnects by reason", [(f"sum by (reason) (increase(jetstream_ingest_upstream_reconnects_total[{RI}]))",
                                           "{{reason}}")], unit="short", stack=True)
    b.timeseries("Resumes from decode", [(f"sum by (result) (increase(jetstream_ingest_resumes_total[{RI}]))",
                                          "{{result}}")], unit="short",
                 description="accepted = a new stream from decode's cursor; retry = decode repeating itself.")
    b.timeseries("Upstream error frames", [(f"sum(increase(jetstream_ingest_error_frames_total[{RI}]))", "op = -1 frames")],
                 unit="short")
    b.row("Throughput")
    b.timeseries("Frames per second", [
        (f"sum(rate(jetstream_ingest_frames_received_total[{RI}]))", "received from upstream"),
        (f"sum(rate(jetstream_ingest_frames_published_total[{RI}]))", "published to decode"),
    ], unit="short")
    b.timeseries("Bytes received per second", [(f"sum(rate(jetstream_ingest_bytes_received_total[{RI}]))", "upstream")],
                 unit="Bps")
    b.row("Lag")
    b.timeseries("Seconds since the last upstream frame", [
        ("max by (instance) (jetstream_ingest_seconds_since_last_frame)", "{{instance}}")], unit="s",
        description="The stall signal: grows while upstream sends nothing.")
    b.timeseries("Published but not yet stored (upstream seq distance)", [
        ("max(jetstream_ingest_last_upstream_seq) - max(consumer_last_seq)", "ingest seq - decode durable seq")],
        unit="none", description="Last upstream seq ingest published minus the last one decode stored durably.")
    process_rows(b, "ingest")
    return b


def decode() -> Board:
    b = Board("jetstream-decode", "Jetstream / decode",
              "jetstream-decode: decoding, ordering, the RocksDB event log, retention and replay.")
    b.row("Throughput")
    b.stat("Events stored/s", f"sum(rate(jetstream_decode_events_stored_total[{RI}]))")
    b.stat("Last stored upstream seq", "max(consumer_last_seq)", unit="none")
    b.stat("Event log size", "max(jetstream_decode_log_disk_bytes)", unit="bytes")
    b.stat("Oldest event age", 'time() - min(jetstream_decode_log_time_us{end="oldest"}) / 1e6', unit="s",
           description="How far back the log goes (retention window, JETSTREAM_EVENT_TTL).")
    b.timeseries("Events per second", [
        (f"sum(rate(jetstream_decode_events_stored_total[{RI}]))", "stored"),
        (f"sum(rate(jetstream_decode_events_published_total[{RI}]))", "published to fanout"),
    ])
    b.timeseries("Events by kind", [(f"sum by (event_type) (rate(consumer_events_processed_total[{RI}]))",
                                     "{{event_type}}")], stack=True)
    b.timeseries("Frames by type", [(f"sum by (type) (rate(jetstream_decode_frames_total[{RI}]))", "{{type}}")],
                 stack=True)
    b.timeseries("Frames from ingest by verdict", [
        (f"sum by (verdict) (rate(jetstream_decode_ingest_frames_total[{RI}]))", "{{verdict}}")], stack=True)
    b.timeseries("Bytes published per second", [(f"sum(rate(jetstream_decode_bytes_published_total[{RI}]))",
                                                  "to fanout")], unit="Bps")
    b.row("Drops, resumes, errors")
    b.timeseries("Drops by reason", [(f"sum by (reason) (rate(jetstream_decode_drops_total[{RI}]))", "{{reason}}")],
                 stack=True, description="Frames, commits or ops that produced no event.")
    b.timeseries("Resumes sent to ingest", [(f"sum(increase(jetstream_decode_resumes_total[{RI}]))", "resumes")],
                 w=6, description="Start, gap, ingest restart, lost tail.")
    b.timeseries("Event log write errors", [(f"sum(increase(jetstream_decode_store_errors_total[{RI}]))", "errors")],
                 w=6)
    b.row("Lag")
    b.timeseries("Ingest receive → stored", [
        ("histogram_quantile(0.5, sum by (le) "
         f"(rate(consumer_event_processing_duration_seconds_bucket[{RI}])))", "p50"),
        (P99_RECEIVE_TO_STORED, "p99"),
    ], unit="s", w=8)
    b.timeseries("RocksDB write", [
        (f"histogram_quantile(0.5, sum by (le) (rate(jetstream_decode_store_write_seconds_bucket[{RI}])))", "p50"),
        (f"histogram_quantile(0.99, sum by (le) (rate(jetstream_decode_store_write_seconds_bucket[{RI}])))", "p99"),
    ], unit="s", w=8)
    b.timeseries("Age of the newest stored event", [
        ('time() - max(jetstream_decode_log_time_us{end="newest"}) / 1e6', "newest")], unit="s", w=8)
    b.timeseries("Upstream event time → stored", [
        (quantile(0.5, UPSTREAM_TO_STORED), "p50"),
        (quantile(0.99, UPSTREAM_TO_STORED), "p99"),
    ], unit="s", w=12,
        description="jetstream_decode_upstream_lag_seconds: from the firehose event's own `time` (commit, "
                    "identity, account) to stored in the event log. Includes the relay's and ingest's delay "
                    "and clock skew with upstream; large while decode catches up on a backlog after downtime.")
    b.timeseries("Batches in flight", [("max(jetstream_decode_batches_in_flight)", "received, not stored")],
                 unit="none", w=12)
    b.row("Event log (RocksDB)")
    b.timeseries("Disk used", [("max by (instance) (jetstream_decode_log_disk_bytes)", "{{instance}}")],
                 unit="bytes", w=8)
    b.timeseries("Disk growth per day (30 min trend)", [
        ("max by (instance) (deriv(jetstream_decode_log_disk_bytes[30m])) * 86400", "{{instance}}")],
        unit="bytes", w=8)
    b.timeseries("Oldest and newest event age", [
        ('time() - min(jetstream_decode_log_time_us{end="oldest"}) / 1e6', "oldest"),
        ('time() - max(jetstream_decode_log_time_us{end="newest"}) / 1e6', "newest"),
    ], unit="s", w=8)
    b.stat("Retention pass (mean)", "max(jetstream_decode_retention_run_seconds_sum / "
                                    "jetstream_decode_retention_run_seconds_count)", unit="s", w=8)
    b.timeseries("Free disk space (data directory)", [
        ("min by (instance) (jetstream_decode_disk_free_bytes)", "{{instance}}")], unit="bytes", w=8,
        description="Below --min-free-bytes (default 1 GiB) decode stops storing, ingest holds the frames, "
                    "/readyz says 'disk full'; storing resumes by itself when space returns.")
    b.timeseries("Event log writable", [("min by (instance) (jetstream_decode_log_writable)", "{{instance}}")],
                 unit="none", w=8,
                 description="0: decode started on a full disk and serves its log read-only until space returns.")
    b.row("Compacted twin (state for snapshot=true)")
    b.timeseries("Records kept, by group", [
        ("max by (group) (jetstream_decode_twin_records)", "{{group}}")], w=8,
        description="The latest create/update of every record of the --compact-collections, and "
                    "every DID's latest identity and account event.")
    b.timeseries("Tombstones kept, by group", [
        ("max by (group) (jetstream_decode_twin_tombstones)", "{{group}}")], w=8,
        description="Deletes kept until --tombstone-ttl (default 7d).")
    b.timeseries("Twin on disk", [("max by (instance) (jetstream_decode_twin_bytes)", "{{instance}}")],
                 unit="bytes", w=8)
    b.timeseries("Tombstones expired per second", [
        (f"sum(rate(jetstream_decode_twin_tombstones_expired_total[{RI}]))", "expired")], w=8)
    b.timeseries("State build progress", [
        ("min by (instance) (jetstream_decode_twin_build_progress_ratio)", "{{instance}}")],
        unit="percentunit", w=8,
        description="Collections added to --compact-collections are built from the log that "
                    "decode holds, while ingestion goes on; 1 when no build runs.")
    b.timeseries("State build: log events read per second", [
        (f"sum(rate(jetstream_decode_twin_build_events_read_total[{RI}]))", "read")], w=8)
    b.timeseries("Backfill batches applied, by answer", [
        (f"sum by (outcome) (rate(jetstream_decode_backfill_batches_total[{RI}]))", "{{outcome}}")], w=8,
        description="Repository batches from jetstream-backfill. stored: applied and durable; busy: "
                    "not storable now (disk short, a failed write), backfill sends it again; "
                    "rejected: no compacted twin, or a collection set that does not parse.")
    b.timeseries("Backfill records per second, by result", [
        (f"sum by (result) (rate(jetstream_decode_backfill_records_total[{RI}]))", "{{result}}")], w=8,
        description="applied: a new event (for snapshot=true connections only); unchanged: the twin "
                    "held the same or a newer rev (a live commit wins); tombstoned: the fetched "
                    "repository no longer holds it; invalid: not atproto data.")
    b.row("Verification (--verify)")
    b.timeseries("Commits dropped by verification, by reason", [
        (f'sum by (reason) (rate(jetstream_decode_drops_total{{reason=~"bad_signature|bad_commit|unknown_key|unresolvable_did|ops_mismatch|mst_mismatch|rev_not_increasing|rev_in_future|no_prev_data"}}[{RI}]))',
         "{{reason}}")], w=8,
        description="bad_signature: not signed by the DID's current #atproto key (after one refresh "
                    "of its document); bad_commit: the signed commit is missing or of another repo/rev; "
                    "unknown_key: the DID document has no usable key; unresolvable_did: no document. "
                    "--verify full: ops_mismatch: an op is not what the signed tree holds; "
                    "mst_mismatch: the ops do not undo to prevData; rev_not_increasing: a replayed or "
                    "reordered commit; rev_in_future: a rev ahead of the clock; no_prev_data: "
                    "--verify-strict and a frame older than Sync 1.1.")
    b.timeseries("Commits passed by verification", [
        (f"sum by (result) (rate(jetstream_decode_verify_commits_total[{RI}]))", "{{result}}")], w=8,
        description="verified: signature checked; passed_unverified: --verify-fail-open let through a "
                    "commit whose DID did not resolve.")
    b.timeseries("Frames held for their DID", [
        ("max by (instance) (jetstream_decode_verify_held_frames)", "frames {{instance}}"),
        ("max by (instance) (jetstream_decode_verify_held_dids)", "DIDs {{instance}}")], w=8,
        description="Commits wait here (stored, not lost) while their DID resolves; every later "
                    "frame of the DID waits behind them so its order is kept.")
    b.timeseries("Sync 1.1 (--verify full): unproven commits and rev cache", [
        (f"sum(rate(jetstream_decode_verify_unproven_commits_total[{RI}]))", "unproven commits/s"),
        (f"sum(rate(jetstream_decode_verify_rev_store_reads_total[{RI}]))", "revs read from the store/s"),
        ("max by (instance) (jetstream_decode_verify_repo_revs)", "repositories in memory {{instance}}")],
        w=8, description="Unproven: frames older than Sync 1.1 (no prevData), passed and counted "
                         "(dropped with --verify-strict). Revs read from the store: repositories "
                         "beyond --verify-rev-cache-size.")
    b.timeseries("Identity cache", [
        ("max by (instance) (jetstream_identity_cache_entries)", "entries {{instance}}")], w=8)
    b.timeseries("Identity cache lookups", [
        (f"sum by (result) (rate(jetstream_identity_cache_lookups_total[{RI}]))", "{{result}}")], w=8)
    b.timeseries("DID resolutions", [
        (f"sum by (outcome) (rate(jetstream_identity_resolutions_total[{RI}]))", "{{outcome}}")], w=8)
    b.timeseries("HTTP client: errors and refused addresses", [
        (f"sum by (reason) (rate(jetstream_http_client_errors_total[{RI}]))", "{{reason}}"),
        (f"sum by (class) (rate(jetstream_http_client_refused_addresses_total[{RI}]))", "refused {{class}}")],
        w=8, description="Refused: a DID document or redirect pointed at a loopback, private, "
                         "link-local, ... address of a host the operator did not name.")
    b.row("Replay")
    b.timeseries("Replay pages by status", [
        (f"sum by (status) (rate(jetstream_decode_replay_pages_total[{RI}]))", "{{status}}")], w=8)
    b.timeseries("Replay events per second", [
        (f"sum(rate(jetstream_decode_replay_events_total[{RI}]))", "served")], w=8)
    b.timeseries("Replay page latency", [
        (f"histogram_quantile(0.99, sum by (le) (rate(jetstream_decode_replay_page_seconds_bucket[{RI}])))", "p99")],
        unit="s", w=8)
    process_rows(b, "decode")
    return b


def fanout() -> Board:
    b = Board("jetstream-fanout", "Jetstream / fanout",
              "jetstream-fanout: client websockets (/subscribe), replay, slow consumers; one line per replica.")
    b.row("Subscribers")
    b.stat("Subscribers", "sum(jetstream_subscribers_connected)")
    b.stat("Replay sessions", "sum(jetstream_fanout_replay_sessions)",
           description="Subscribers currently served from decode's event log.")
    b.stat("Slow-client closes (1h)", 'sum(increase(jetstream_fanout_client_closes_total{reason="too_slow"}[1h]))',
           thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 10}])
    b.stat("Replicas", 'count(jetstream_build_info{service="fanout"})')
    b.timeseries("Subscribers by replica", [("sum by (instance) (jetstream_subscribers_connected)", "{{instance}}")],
                 w=8)
    b.timeseries("Subscribers by compression", [("sum by (compression) (jetstream_subscribers_connected)",
                                                 "{{compression}}")], w=8, stack=True)
    b.timeseries("options_update messages", [
        (f"sum by (result) (increase(jetstream_fanout_options_updates_total[{RI}]))", "{{result}}")], w=8)
    b.timeseries("Closes by reason", [
        (f"sum by (reason) (increase(jetstream_fanout_client_closes_total[{RI}]))", "{{reason}}")], stack=True)
    b.timeseries("Slow-client closes", [
        (f'sum by (instance) (increase(jetstream_fanout_client_closes_total{{reason="too_slow"}}[{RI}]))',
         "{{instance}}")],
        description="Clients closed for making no progress for JETSTREAM_SLOW_CLIENT_TIMEOUT.")
    b.row("Throughput")
    b.timeseries("Events delivered per second", [
        (f"sum by (instance) (rate(jetstream_events_delivered_total[{RI}]))", "{{instance}}")], stack=True)
    b.timeseries("Bytes delivered per second", [
        (f"sum by (instance) (rate(jetstream_bytes_delivered_total[{RI}]))", "{{instance}}")], unit="Bps", stack=True)
    b.timeseries("Events received from decode per second", [
        (f"sum by (instance) (rate(jetstream_events_emitted_total[{RI}]))", "{{instance}}")])
    b.timeseries("Events skipped by reason", [
        (f"sum by (reason) (rate(jetstream_fanout_events_skipped_total[{RI}]))", "{{reason}}")], stack=True,
        description="filtered: not wanted by a subscriber's filters; oversize: above its maxMessageSizeBytes.")
    b.row("permessage-deflate (browsers)")
    b.timeseries("Events compressed per second", [
        (f"sum by (instance) (rate(jetstream_fanout_deflate_events_total[{RI}]))", "{{instance}}")], w=8,
        description="jetstream_fanout_deflate_events_total: events compressed for permessage-deflate "
                    "subscribers, once per event on a replica however many such clients it has (live "
                    "blocks while one is connected; replay and snapshot pages for the session reading them).")
    b.timeseries("Bytes compressed per second: JSON in, deflate out", [
        (f"sum by (form) (rate(jetstream_fanout_deflate_bytes_total[{RI}]))", "{{form}}")],
        unit="Bps", w=8,
        description="jetstream_fanout_deflate_bytes_total: form=json is the v1 JSON compressed, "
                    "form=deflate what permessage-deflate clients receive instead (once per event).")
    b.timeseries("permessage-deflate subscribers", [
        ('sum by (instance) (jetstream_subscribers_connected{compression="deflate"})', "{{instance}}")], w=8)
    b.row("Lag")
    b.timeseries("Stored (time_us) → delivered", [
        (quantile(0.5, STORED_TO_DELIVERED), "p50"),
        (quantile(0.99, STORED_TO_DELIVERED), "p99"),
        (quantile(0.99, STORED_TO_DELIVERED, by="instance"), "p99 {{instance}}"),
    ], unit="s", w=12,
        description="jetstream_fanout_delivery_lag_seconds: from an event's time_us (sequenced and stored by "
                    "decode) to queued to a client, sampled once per send with the send's oldest event. "
                    "Sends to clients being replayed from an old cursor count too (see replaying clients).")
    b.timeseries("Fanout's own share: arrival → socket", [
        (quantile(0.5, "jetstream_fanout_write_lag_seconds"), "p50"),
        (quantile(0.99, "jetstream_fanout_write_lag_seconds"), "p99"),
        (quantile(0.99, "jetstream_fanout_write_lag_seconds", by="instance"), "p99 {{instance}}"),
    ], unit="s", w=12,
        description="jetstream_fanout_write_lag_seconds: from an event block's arrival at fanout to the kernel "
                    "taking the first frame of a live send to a client, once per send (target p99 < 5 ms). "
                    "Replay and snapshot sends are not measured: their lag is the catch-up governor's to spend.")
    b.timeseries("Behind decode's newest stored event", [(LAG_STORED_TO_FANOUT, "{{instance}}")], unit="s", w=12,
                 description="decode's newest stored time_us minus the newest time_us this replica holds.")
    b.timeseries("Age of the newest event held", [
        ("time() - max by (instance) (jetstream_fanout_head_time_us) / 1e6", "{{instance}}")], unit="s", w=12)
    b.timeseries("Replaying clients behind live", [
        (f"histogram_quantile(0.5, sum by (le) (rate(jetstream_fanout_replay_lag_seconds_bucket[{RI}])))", "p50"),
        (f"histogram_quantile(0.99, sum by (le) (rate(jetstream_fanout_replay_lag_seconds_bucket[{RI}])))", "p99"),
    ], unit="s", w=12)
    b.row("Snapshots (snapshot=true)")
    b.timeseries("Snapshot sessions reading the state", [
        ("sum by (instance) (jetstream_fanout_snapshot_sessions)", "{{instance}}")], w=6)
    b.timeseries("Snapshot events per second", [
        (f"sum by (instance) (rate(jetstream_fanout_snapshot_events_total[{RI}]))", "{{instance}}")], w=6)
    b.timeseries("Snapshots completed", [
        (f"sum by (instance) (increase(jetstream_fanout_snapshots_completed_total[{RI}]))", "{{instance}}")],
        w=6)
    b.timeseries("Snapshots restarted (cursor older than the tombstone horizon)", [
        (f"sum by (instance) (increase(jetstream_fanout_snapshots_restarted_total[{RI}]))", "{{instance}}")],
        w=6)
    b.timeseries("Catch-up rate allowed (live first)", [
        ("max by (instance) (jetstream_fanout_catch_up_rate)", "{{instance}}")], w=8,
        description="jetstream_fanout_catch_up_rate: events/s that replay and snapshot deliveries of a "
                    "replica may take now: halved while live sends' p99 write lag is more than "
                    "--catch-up-live-rise above its baseline, grown again when live is healthy; -1 = off.")
    b.timeseries("Live write lag p99 with catch-up paused (baseline)", [
        ("max by (instance) (jetstream_fanout_live_write_lag_baseline_seconds)", "{{instance}}")],
        unit="s", w=8,
        description="jetstream_fanout_live_write_lag_baseline_seconds: live alone, measured every 10 s with "
                    "catch-up paused (the lowest of the last three); -1 before live first came.")
    b.timeseries("Intervals with live congested", [
        (f"sum by (instance) (increase(jetstream_fanout_catch_up_congested_intervals_total[{RI}]))",
         "{{instance}}")], w=8,
        description="100 ms intervals after which catch-up was halved because live's p99 rose above "
                    "its allowance.")
    b.row("Replay and live feed")
    b.timeseries("Replay sessions by replica", [("sum by (instance) (jetstream_fanout_replay_sessions)",
                                                 "{{instance}}")], w=8)
    b.timeseries("Replay pages per second", [
        (f"sum by (instance) (rate(jetstream_fanout_replay_pages_total[{RI}]))", "{{instance}}")], w=8)
    b.timeseries("Window of recent events", [("sum by (instance) (jetstream_fanout_window_bytes)", "{{instance}}")],
                 unit="bytes", w=8)
    b.timeseries("Live feed gaps repaired from the log", [
        (f"sum by (instance) (increase(jetstream_fanout_feed_repairs_total[{RI}]))", "gaps {{instance}}"),
        (f"sum by (instance) (increase(jetstream_fanout_feed_repaired_events_total[{RI}]))", "events {{instance}}"),
    ])
    b.timeseries("Live chain resets", [
        (f"sum by (instance) (increase(jetstream_fanout_feed_resets_total[{RI}]))", "{{instance}}")])
    b.row("Requests being read")
    b.timeseries("Request memory held by long requests", [
        ("sum by (instance) (jetstream_fanout_request_memory_bytes)", "{{instance}}")], unit="bytes", w=8,
        description="Long request heads (subscribe URLs over 16 KiB, up to 1 MiB) hold a share of "
                    "--max-request-memory while they are read; at the limit, new ones wait in line.")
    b.timeseries("Long requests: started and waiting", [
        (f"sum by (instance) (rate(jetstream_fanout_long_requests_total[{RI}]))", "started/s {{instance}}"),
        ("sum by (instance) (jetstream_fanout_requests_waiting)", "waiting {{instance}}")], w=8)
    b.timeseries("Header timeouts", [
        (f"sum by (instance) (increase(jetstream_fanout_header_timeouts_total[{RI}]))", "{{instance}}")], w=8,
        description="Connections closed because their request was not complete within --header-timeout "
                    "(slow or stalled clients).")
    process_rows(b, "fanout")
    return b


def backfill() -> Board:
    b = Board("jetstream-backfill", "Jetstream / backfill",
              "jetstream-backfill: repositories listed, fetched (getRepo) and handed to decode, which "
              "applies them to its compacted twin.")
    b.row("Progress")
    b.stat("Repositories done", 'sum(jetstream_backfill_repos{state="done"})')
    b.stat("Repositories left", 'sum(jetstream_backfill_repos{state=~"queued|resolving|fetching"})')
    b.stat("Repositories failed", 'sum(jetstream_backfill_repos{state="failed"})',
           thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}])
    b.stat("Decode's collections known", "min(jetstream_backfill_decode_state_known)",
           thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
           description="0 until decode's state info (its --compact-collections) arrived: nothing is fetched before.")
    b.timeseries("Repositories by state", [("sum by (state) (jetstream_backfill_repos)", "{{state}}")], w=8)
    b.timeseries("Records per second, by what decode did", [
        (f"sum by (result) (rate(jetstream_backfill_records_total[{RI}]))", "{{result}}")], w=8,
        description="applied: stored as new events (snapshot=true connections only); unchanged: decode "
                    "held the same or a newer rev; tombstoned: the repository no longer holds it.")
    b.timeseries("getRepo bytes per second", [(f"sum(rate(jetstream_backfill_bytes_total[{RI}]))", "bytes/s")],
                 unit="Bps", w=8)
    b.row("Fetches and hosts")
    b.timeseries("Fetch attempts, by outcome", [
        (f"sum by (outcome) (rate(jetstream_backfill_fetches_total[{RI}]))", "{{outcome}}")], w=8,
        description="retry: tried again later; host_busy: a 429 or 5xx paused the host; failed: given up.")
    b.timeseries("Fetch errors, by reason", [
        (f"sum by (reason) (rate(jetstream_backfill_fetch_errors_total[{RI}]))", "{{reason}}")], w=8)
    b.timeseries("Repositories given up, by reason", [
        (f"sum by (reason) (increase(jetstream_backfill_repos_failed_total[{RI}]))", "{{reason}}")], w=8,
        description="not_found, deactivated, taken_down: the PDS said so; forbidden_address: a DID document "
                    "pointed at an address nobody named; too_large: over --max-repo-bytes.")
    b.timeseries("Hosts, by state", [("sum by (state) (jetstream_backfill_hosts)", "{{state}}")], w=8,
                 description="paused: backing off after 429 or 5xx (Retry-After honoured).")
    b.timeseries("Batches to decode", [
        (f"sum by (event) (rate(jetstream_backfill_batches_total[{RI}]))", "{{event}}"),
        ("sum(jetstream_backfill_unacked_batches)", "awaiting an ack")], w=8,
        description="Every batch stays in backfill until decode acknowledges it stored; resent: no ack "
                    "in --ack-timeout, or decode answered busy.")
    b.timeseries("HTTP client: errors and refused addresses", [
        (f"sum by (reason) (rate(jetstream_http_client_errors_total[{RI}]) * on (job, instance) group_left () "
         'jetstream_build_info{service="backfill"})', "{{reason}}"),
        (f"sum by (class) (rate(jetstream_http_client_refused_addresses_total[{RI}]) * on (job, instance) "
         'group_left () jetstream_build_info{service="backfill"})', "refused {{class}}")], w=8,
        description="Refused: a DID document or a relay's host list named a loopback, private, link-local, ... "
                    "address of a host the operator did not name: nothing was fetched from it.")
    process_rows(b, "backfill")
    return b


def overview() -> Board:
    b = Board("jetstream-overview", "Jetstream / overview",
              "The whole pipeline: upstream → ingest → decode (event log) → fanout ×N → clients.")
    b.row("Health")
    b.stat("Instances up", 'sum(up * on (job, instance) group_left () jetstream_build_info)',
           description="Scraped targets that export jetstream_build_info.")
    b.stat("Connected upstream", "max(jetstream_ingest_upstream_connected)",
           thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}])
    b.stat("Subscribers", "sum(jetstream_subscribers_connected)")
    b.stat("Replay sessions", "sum(jetstream_fanout_replay_sessions)")
    b.row("Throughput")
    b.timeseries("Pipeline throughput", [
        (f"sum(rate(jetstream_ingest_frames_received_total[{RI}]))", "frames from upstream (ingest)"),
        (f"sum(rate(jetstream_decode_events_stored_total[{RI}]))", "events stored (decode)"),
        (f"sum(rate(jetstream_events_delivered_total[{RI}]))", "events delivered to clients (all fanouts)"),
    ], w=24)
    b.row("Lag: upstream → stored → delivered")
    b.timeseries("Lag: upstream time → stored → delivered", [
        (quantile(0.5, UPSTREAM_TO_STORED), "upstream time → stored, p50 (decode)"),
        (quantile(0.99, UPSTREAM_TO_STORED), "upstream time → stored, p99 (decode)"),
        (quantile(0.5, STORED_TO_DELIVERED), "stored → delivered, p50 (all fanouts)"),
        (quantile(0.99, STORED_TO_DELIVERED), "stored → delivered, p99 (all fanouts)"),
    ], unit="s", w=12,
        description="The two hops of an event's lag: the firehose `time` → stored in decode's log "
                    "(jetstream_decode_upstream_lag_seconds), then decode's time_us → queued to a client "
                    "(jetstream_fanout_delivery_lag_seconds, per send; replayed clients included).")
    b.timeseries("Lag signals", [
        ("max(jetstream_ingest_seconds_since_last_frame)", "since the last upstream frame (ingest)"),
        (P99_RECEIVE_TO_STORED, "ingest receive → stored, p99 (decode)"),
        (f"max({LAG_STORED_TO_FANOUT})", "stored → fanout, worst replica"),
        (f"histogram_quantile(0.99, sum by (le) (rate(jetstream_fanout_replay_lag_seconds_bucket[{RI}])))",
         "replaying clients behind live, p99"),
    ], unit="s", w=12)
    b.row("Losses and churn")
    b.timeseries("decode drops by reason", [
        (f"sum by (reason) (rate(jetstream_decode_drops_total[{RI}]))", "{{reason}}")], w=8, stack=True)
    b.timeseries("Upstream reconnects by reason", [
        (f"sum by (reason) (increase(jetstream_ingest_upstream_reconnects_total[{RI}]))", "{{reason}}")], w=8,
        stack=True)
    b.timeseries("Client closes by reason", [
        (f"sum by (reason) (increase(jetstream_fanout_client_closes_total[{RI}]))", "{{reason}}")], w=8, stack=True,
        description="too_slow = slow-client closes.")
    b.row("Event log")
    b.stat("Event log size", "max(jetstream_decode_log_disk_bytes)", unit="bytes", w=12)
    b.stat("Oldest event age", 'time() - min(jetstream_decode_log_time_us{end="oldest"}) / 1e6', unit="s", w=12)
    b.row("Resources by service")
    b.timeseries("CPU (cores)", [
        (f"sum by (service) ({of_service_any(f'rate(process_cpu_seconds_total[{RI}])')})", "{{service}}")])
    b.timeseries("Resident memory", [
        (f"sum by (service) ({of_service_any('process_resident_memory_bytes')})", "{{service}}")], unit="bytes")
    return b


def of_service_any(metric: str) -> str:
    return f"{metric} * on (job, instance) group_left (service) jetstream_build_info"


BOARDS = {"jetstream-overview.json": overview, "jetstream-ingest.json": ingest,
          "jetstream-decode.json": decode, "jetstream-fanout.json": fanout,
          "jetstream-backfill.json": backfill}


def render(make) -> str:
    return json.dumps(make().json(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for name, make in BOARDS.items():
        path = HERE / name
        text = render(make)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote dashboards/{name}")
    if stale:
        print("out of date (run python3 dashboards/generate.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
