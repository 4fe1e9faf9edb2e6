#!/usr/bin/env python3
"""Live check of the observability stack, on loopback, with no Docker and no cluster.

Starts, each on 127.0.0.1 with free ports and in a temporary folder:
  - a real Prometheus server (Debian package `prometheus`) scraping every service each second,
    with the alert rules of deploy/prometheus/rules loaded;
  - `jetstream-frames serve ../shared/corpus/dev.frames --keep-open --rate 5` as the upstream;
  - jetstream-decode, jetstream-ingest and jetstream-fanout from the build dir, wired together;
  - two websocket clients of fanout's /subscribe (python socket module): one live, which also
    sends an options_update, and one with cursor=1, which is replayed from decode's log.

Once the whole corpus went through (ingest published every frame, decode stored events, both
clients received events) and Prometheus scraped that, it checks:
  - every service's /healthz and /readyz answer 200, and every scrape target is up;
  - EVERY expression of EVERY panel of the dashboards in dashboards/ returns data through the
    Prometheus HTTP API (non-empty result with at least one number that is not NaN);
  - every alert rule evaluated without error;
  - SIGTERM to fanout closes the live client with 1001 ("server shutting down").
Every wait is bounded; everything started is stopped at the end (and killed if the test dies:
PR_SET_PDEATHSIG). Skips (exit 77) when a binary is not built or ../shared is absent.

usage: live_stack_test.py --build-dir DIR [--shared-dir DIR | --shared-dir-default DIR] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_common as dc  # noqa: E402

ROOT = dc.source_root()
RATE_INTERVAL = "1m"  # what $__rate_interval becomes: the whole run fits in it
FRAMES_PER_SECOND = 5
START_TIMEOUT = 30.0
FLOW_TIMEOUT = 90.0
QUERY_RETRY_SECONDS = 15.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Processes:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen, Path]] = []
        self.stopped: set[str] = set()

    def start(self, name: str, argv: list[str], stdout_file: bool = False) -> subprocess.Popen:
        log_path = self.workdir / f"{name}.log"
        out = open(self.workdir / f"{name}.out", "wb") if stdout_file else open(log_path, "ab")
        err = open(log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("JETSTREAM_")}
        log(f"start {name}: {' '.join(argv)}")
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                cwd=self.workdir, preexec_fn=_die_with_parent)
        self.started.append((name, proc, log_path))
        return proc

    def stop(self, name: str, timeout: float = 10.0, backtrace_on_hang: bool = False) -> int | None:
        self.stopped.add(name)
        for n, proc, _ in self.started:
            if n == name and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    return proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop within {timeout}s: SIGKILL")
                    gdb = dc.which("gdb")
                    if backtrace_on_hang and gdb:
                        out = subprocess.run([gdb, "-p", str(proc.pid), "-batch", "-ex", "thread apply all bt 12"],
                                             capture_output=True, text=True, timeout=60)
                        (self.workdir / f"{name}.hang-backtrace.txt").write_text(out.stdout + out.stderr)
                        log(f"backtrace of the hung {name}: {self.workdir / (name + '.hang-backtrace.txt')}")
                    proc.kill()
                    proc.wait(timeout=5)
        return None

    def stop_all(self) -> None:
        for name, proc, _ in reversed(self.started):
            if proc.poll() is None:
                self.stop(name)

    def dead(self) -> list[str]:
        return [f"{n} (exit {p.returncode})" for n, p, _ in self.started
                if p.poll() is not None and n not in self.stopped]

    def tails(self, lines: int = 25) -> None:
        for name, _, path in self.started:
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                print(f"----- last {len(text)} lines of {path.name}")
                print("\n".join(text))


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def wait_for(what: str, predicate, timeout: float, procs: Processes, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        dead = procs.dead()
        if dead:
            raise RuntimeError(f"while waiting for {what}: exited early: {', '.join(dead)}")
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def scrape(port: int) -> dict[str, float]:
    """family name -> sum over its samples (histograms: _count)."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    out: dict[str, float] = {}
    if status != 200:
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return out


class WsClient(threading.Thread):
    """A minimal RFC 6455 client: handshake, reads every frame, answers pings, records the
    close code. Client frames are masked."""

    def __init__(self, port: int, path: str, name: str):
        super().__init__(daemon=True, name=name)
        self.port, self.path = port, path
        self.messages = 0
        self.close_code: int | None = None
        self.error: str | None = None
        self.stopping = threading.Event()
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed during the handshake")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        lines = head.decode(errors="replace").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise RuntimeError(f"handshake refused: {lines[0]}")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        if not any(l.lower().startswith("sec-websocket-accept:") and l.split(":", 1)[1].strip() == accept for l in lines):
            raise RuntimeError("bad Sec-WebSocket-Accept")
        self.sock.settimeout(0.5)

    def _recv_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                if self.stopping.is_set():
                    raise EOFError("stopping")
                continue
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(header + mask + masked)

    def run(self) -> None:
        try:
            while True:
                b0, b1 = self._recv_exact(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._recv_exact(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._recv_exact(8))[0]
                if b1 & 0x80:
                    self._recv_exact(4)  # servers must not mask; tolerate it
                payload = self._recv_exact(n)
                if opcode in (0x1, 0x2) or (opcode == 0x0 and b0 & 0x80):
                    if b0 & 0x80:
                        self.messages += 1
                elif opcode == 0x9:
                    self.send(0xA, payload)
                elif opcode == 0x8:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    try:
                        self.send(0x8, payload[:2])
                        self.sock.settimeout(1.0)
                        self.sock.recv(1)  # the server closes TCP after the close handshake
                    except OSError:
                        pass
                    self.sock.close()
                    return
        except EOFError:
            return
        except OSError as e:
            self.error = str(e)

    def close(self) -> None:
        self.stopping.set()
        try:
            if self.close_code is None:
                self.send(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.join(timeout=3)
        try:
            self.sock.close()
        except OSError:
            pass


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expression) for every target of every panel."""
    out = []
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        panels = list(board.get("panels", []))
        while panels:
            panel = panels.pop(0)
            panels.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((path.name, panel.get("title", "?"), target["expr"]))
    return out


def substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("${__rate_interval}", RATE_INTERVAL)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr}")
    return expr


def prom_query(prom_port: int, expr: str) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url, timeout=10)
    if status != 200:
        return False, f"HTTP {status}: {body[:300]}"
    data = json.loads(body)
    if data.get("status") != "success":
        return False, f"error: {data.get('error')}"
    result = data["data"]["result"]
    rtype = data["data"]["resultType"]
    if rtype == "scalar":
        values = [result[1]]
    elif rtype == "vector":
        values = [r["value"][1] for r in result]
    else:
        values = [v[1] for r in result for v in r.get("values", [])]
    numbers = [float(v) for v in values]
    if not numbers:
        return False, "empty result"
    if all(math.isnan(v) for v in numbers):
        return False, f"only NaN ({len(numbers)} series)"
    shown = ", ".join(f"{v:.6g}" for v in numbers[:4]) + (" ..." if len(numbers) > 4 else "")
    return True, f"{len(numbers)} series: {shown}"


def start_fake_pds(car: bytes, repo_did: str):
    """A PLC directory and a PDS in one loopback HTTP server: every DID's document names this
    server as its PDS; getRepo serves `car` for `repo_did` and RepoNotFound for any other."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # noqa: D401 - quiet
            pass

        def do_GET(self):  # noqa: N802 - the http.server API
            port = self.server.server_address[1]
            if self.path.startswith("/did:"):
                did = self.path[1:]
                body = json.dumps({"id": did, "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                                                           "serviceEndpoint": f"http://127.0.0.1:{port}"}]}).encode()
                self._answer(200, body, "application/json")
            elif self.path.startswith("/xrpc/com.atproto.sync.getRepo"):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                if query.get("did", [""])[0] == repo_did:
                    self._answer(200, car, "application/vnd.ipld.car")
                else:
                    self._answer(400, b'{"error":"RepoNotFound"}', "application/json")
            else:
                self._answer(404, b"{}", "application/json")

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", type=Path, required=True)
    parser.add_argument("--shared-dir", type=Path, default=None,
                        help="default: $JETSTREAM_SHARED_DIR, else --shared-dir-default, else ../shared")
    parser.add_argument("--shared-dir-default", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.shared_dir is None:
        env = os.environ.get("JETSTREAM_SHARED_DIR")
        args.shared_dir = Path(env) if env else args.shared_dir_default

    bins = {}
    for name in ("ingest", "decode", "fanout", "frames", "backfill"):
        path = dc.binary(args.build_dir.resolve(), name)
        if path is None:
            dc.skip(f"{args.build_dir / dc.BINARY_PATHS[name]} is not built")
        bins[name] = str(path)
    corpus = args.shared_dir / "corpus" / "dev.frames"
    if not corpus.is_file():
        dc.skip(f"{corpus} is absent (../shared beside the repository)")
    prometheus = dc.which("prometheus")
    if not prometheus:
        print("FAILED: the prometheus server is not installed: run scripts/install-deps.sh (Debian package prometheus)")
        return 1
    dictionary = args.shared_dir / "zstd" / "jetstream-v1.zdict"

    f = dc.Failures("live stack")
    workdir = Path(tempfile.mkdtemp(prefix="jetstream-deploy-live-"))
    procs = Processes(workdir)
    clients: list[WsClient] = []
    failed_hard = False
    try:
        (p_prom, p_frames_ws, p_ing_frames, p_ing_control, p_ing_metrics, p_dec_events, p_dec_replay,
         p_dec_metrics, p_fan_http, p_fan_metrics, p_dec_backfill, p_bf_metrics) = free_ports(12)
        rules = sorted(str(p) for p in (ROOT / "deploy/prometheus/rules").glob("*.yml"))
        prom_config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": rules,
            "scrape_configs": [
                {"job_name": "jetstream-ingest", "static_configs": [{"targets": [f"127.0.0.1:{p_ing_metrics}"]}]},
                {"job_name": "jetstream-decode", "static_configs": [{"targets": [f"127.0.0.1:{p_dec_metrics}"]}]},
                {"job_name": "jetstream-fanout", "static_configs": [{"targets": [f"127.0.0.1:{p_fan_metrics}"]}]},
                {"job_name": "jetstream-backfill", "static_configs": [{"targets": [f"127.0.0.1:{p_bf_metrics}"]}]},
            ],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(prom_config, indent=2))  # JSON is YAML
        procs.start("prometheus", [prometheus, f"--config.file={workdir / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={workdir / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{p_prom}", "--log.level=warn"])
        wait_for("prometheus /-/ready", lambda: http_get(f"http://127.0.0.1:{p_prom}/-/ready")[0] == 200,
                 START_TIMEOUT, procs)

        procs.start("frames-serve", [bins["frames"], "serve", str(corpus), "--listen", f"127.0.0.1:{p_frames_ws}",
                                     "--keep-open", "--rate", str(FRAMES_PER_SECOND)], stdout_file=True)
        url_file = workdir / "frames-serve.out"
        wait_for("jetstream-frames serve to print its URL",
                 lambda: url_file.is_file() and url_file.read_text().strip().startswith("ws"), START_TIMEOUT, procs)
        upstream = url_file.read_text().strip().splitlines()[0]

        dict_args = ["--zstd-dictionary-path", str(dictionary)] if dictionary.is_file() else []
        procs.start("decode", [bins["decode"], "--data-dir", str(workdir / "data"),
                               "--frames-endpoint", f"tcp://127.0.0.1:{p_ing_frames}",
                               "--control-endpoint", f"tcp://127.0.0.1:{p_ing_control}",
                               "--events-endpoint", f"tcp://127.0.0.1:{p_dec_events}",
                               "--replay-endpoint", f"tcp://127.0.0.1:{p_dec_replay}",
                               "--backfill-endpoint", f"tcp://127.0.0.1:{p_dec_backfill}",
                               "--metrics-listen-addr", f"127.0.0.1:{p_dec_metrics}",
                               "--ws-url", upstream,
                               # the state panels need a twin: the corpus is mostly app.bsky.*
                               "--compact-collections", "app.bsky.*"] + dict_args)
        procs.start("ingest", [bins["ingest"], "--ws-url", upstream,
                               "--frames-listen-addr", f"127.0.0.1:{p_ing_frames}",
                               "--control-listen-addr", f"127.0.0.1:{p_ing_control}",
                               "--metrics-listen-addr", f"127.0.0.1:{p_ing_metrics}"])
        metrics_ports = {"ingest": p_ing_metrics, "decode": p_dec_metrics}
        for name, port in metrics_ports.items():
            wait_for(f"{name} /healthz", lambda port=port: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
                     START_TIMEOUT, procs)
        # fanout starts once decode has events, so those are only in decode's log: the client
        # with cursor=1 below must be replayed from it (replay sessions, pages, lag).
        wait_for("decode to store 20 events",
                 lambda: scrape(p_dec_metrics).get("jetstream_decode_events_stored_total", 0) >= 20, FLOW_TIMEOUT, procs)
        procs.start("fanout", [bins["fanout"], "--listen-addr", f"127.0.0.1:{p_fan_http}",
                               "--metrics-listen-addr", f"127.0.0.1:{p_fan_metrics}",
                               "--events-endpoint", f"tcp://127.0.0.1:{p_dec_events}",
                               "--replay-endpoint", f"tcp://127.0.0.1:{p_dec_replay}",
                               "--shutdown-grace", "3s"] + dict_args)
        metrics_ports["fanout"] = p_fan_metrics
        wait_for("fanout /healthz", lambda: http_get(f"http://127.0.0.1:{p_fan_metrics}/healthz")[0] == 200,
                 START_TIMEOUT, procs)
        wait_for("fanout /readyz (joined to decode's stream)",
                 lambda: http_get(f"http://127.0.0.1:{p_fan_metrics}/readyz")[0] == 200, START_TIMEOUT, procs)

        # Histograms only show a rate once Prometheus has a sample from before the observation.
        wait_for("prometheus to scrape fanout",
                 lambda: '"value"' in http_get(f"http://127.0.0.1:{p_prom}/api/v1/query?query=" +
                                               urllib.parse.quote('up{job="jetstream-fanout"} == 1'))[1],
                 START_TIMEOUT, procs)
        time.sleep(1.5)

        live = WsClient(p_fan_http, "/subscribe", "live-client")
        live.connect()
        live.start()
        clients.append(live)
        live.send(0x1, json.dumps({"type": "options_update", "payload": {"wantedCollections": []}}).encode())
        log("live client connected to /subscribe (and sent an options_update)")

        replay = WsClient(p_fan_http, "/subscribe?cursor=1", "replay-client")
        replay.connect()
        replay.start()
        clients.append(replay)
        log("replay client connected to /subscribe?cursor=1")

        frame_count = 0
        with open(corpus, "rb") as fh:
            data = fh.read()
        pos = 0
        while pos + 4 <= len(data):
            (n,) = struct.unpack("<I", data[pos:pos + 4])
            pos += 4 + n
            frame_count += 1

        def flowed() -> bool:
            ing, dec, fan = scrape(p_ing_metrics), scrape(p_dec_metrics), scrape(p_fan_metrics)
            return (ing.get("jetstream_ingest_frames_published_total", 0) >= frame_count
                    and dec.get("consumer_last_seq", 0) > 0
                    and dec.get("jetstream_decode_batches_in_flight", 1) == 0
                    and fan.get("jetstream_events_delivered_total", 0) > 0
                    and fan.get("jetstream_fanout_replay_pages_total", 0) > 0
                    and live.messages > 0 and replay.messages > 0)

        wait_for(f"all {frame_count} frames to flow and both clients to receive events", flowed, FLOW_TIMEOUT, procs)
        stored = scrape(p_dec_metrics).get("jetstream_decode_events_stored_total", 0)
        log(f"flowed: {frame_count} frames, {stored:.0f} events stored; live client got {live.messages}, "
            f"replay client got {replay.messages} messages")
        f.check(replay.messages >= min(stored, 20), f"replay client got {replay.messages} of {stored:.0f} events")

        def all_targets_up() -> bool:
            status, body = http_get(f"http://127.0.0.1:{p_prom}/api/v1/targets")
            if status != 200:
                return False
            active = json.loads(body)["data"]["activeTargets"]
            return len(active) == 4 and all(t["health"] == "up" for t in active)

        # Backfill: a PLC directory and a PDS played here (the real repository export of the
        # corpus, and an account the PDS no longer has), so its panels have data to show.
        car = (args.shared_dir / "corpus" / "repo.car").read_bytes()
        repo_did, gone_did = "did:plc:53iucmf5ldftgqyf2ac7hmhd", "did:plc:gggggggggggggggggggggggg"
        pds_server = start_fake_pds(car, repo_did)
        pds_url = f"http://127.0.0.1:{pds_server.server_address[1]}"
        dids_file = workdir / "dids.txt"
        dids_file.write_text(f"{repo_did}\n{gone_did}\n")
        procs.start("backfill", [bins["backfill"], "--data-dir", str(workdir / "backfill"),
                                 "--dids-file", str(dids_file), "--plc-url", pds_url,
                                 "--decode-backfill-endpoint", f"tcp://127.0.0.1:{p_dec_backfill}",
                                 "--decode-events-endpoint", f"tcp://127.0.0.1:{p_dec_events}",
                                 "--metrics-listen-addr", f"127.0.0.1:{p_bf_metrics}",
                                 "--progress-interval", "1s"])
        metrics_ports["backfill"] = p_bf_metrics
        wait_for("backfill to fetch one repository and give up the other",
                 lambda: scrape(p_bf_metrics).get("jetstream_backfill_records_total", 0) >= 19
                 and scrape(p_bf_metrics).get("jetstream_backfill_repos_failed_total", 0) >= 1,
                 FLOW_TIMEOUT, procs)

        wait_for("prometheus to have every target up", all_targets_up, 20, procs)
        time.sleep(3)  # three more scrapes (1 s interval) after the data flowed

        for name, port in metrics_ports.items():
            for path in ("/healthz", "/readyz"):
                status, body = http_get(f"http://127.0.0.1:{port}{path}")
                f.check(status == 200, f"{name} {path} answered {status} {body.strip()}")

        # Every expression of every dashboard panel.
        queries = dashboard_queries()
        f.check(len(queries) > 0, "no dashboard expressions found")
        pending = []
        for board, title, expr in queries:
            ok, detail = prom_query(p_prom, substitute(expr))
            if ok:
                log(f"ok   {board} / {title}: {detail}")
            else:
                pending.append((board, title, expr, detail))
        deadline = time.monotonic() + QUERY_RETRY_SECONDS
        while pending and time.monotonic() < deadline:
            time.sleep(1)
            still = []
            for board, title, expr, _ in pending:
                ok, detail = prom_query(p_prom, substitute(expr))
                if ok:
                    log(f"ok   {board} / {title}: {detail} (after a retry)")
                else:
                    still.append((board, title, expr, detail))
            pending = still
        for board, title, expr, detail in pending:
            f.fail(f"{board} / {title}: {detail}: {expr}")
        log(f"{len(queries) - len(pending)} of {len(queries)} dashboard expressions returned data")

        # Alert rules evaluated without error.
        status, body = http_get(f"http://127.0.0.1:{p_prom}/api/v1/rules")
        rule_count = 0
        if f.check(status == 200, f"/api/v1/rules answered {status}"):
            for group in json.loads(body)["data"]["groups"]:
                for rule in group["rules"]:
                    rule_count += 1
                    f.check(rule.get("health") == "ok",
                            f"rule {rule.get('name')}: health {rule.get('health')} {rule.get('lastError', '')}")
            f.check(rule_count > 0, "no alert rule loaded")
        log(f"{rule_count} alert rules loaded and evaluated")

        # Graceful fanout shutdown: the live client gets 1001.
        log("SIGTERM to fanout: the live client must be closed with 1001")
        rc = procs.stop("fanout", timeout=15, backtrace_on_hang=True)
        live.join(timeout=5)
        f.check(rc == 0, f"fanout exited with {rc} on SIGTERM")
        f.check(live.close_code == 1001, f"live client close code {live.close_code}, want 1001")
    except Exception as e:  # noqa: BLE001
        failed_hard = True
        f.fail(f"{type(e).__name__}: {e}")
    finally:
        for c in clients:
            c.close()
        procs.stop_all()
        if f.items or failed_hard:
            procs.tails()
            print(f"logs kept in {workdir}")
        elif args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return f.finish()


if __name__ == "__main__":
    sys.exit(main())
