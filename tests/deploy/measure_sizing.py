#!/usr/bin/env python3
"""Sizing measurements for README "Operating" (not a test: run by hand, prints the numbers).

    python3 tests/deploy/measure_sizing.py --build-dir build/release [--frames 300000]
        [--clients 1000] [--rate 2000] [--seconds 30]

1. Event log bytes per event: a capture of N real relay frames (../shared/corpus/dev.frames
   repeated, each frame's `seq` rewritten to 1, 2, 3, ...) goes through jetstream-frames serve
   -> ingest -> decode at full speed; jetstream_decode_log_disk_bytes (SST files +
   memtables) is only refreshed every retention interval, so: `du` of decode's data dir after it
   stopped, divided by the events stored.
   Also the catch-up rate (events stored per second).
2. Clients per fanout replica: jetstream-loadgen opens --clients websocket clients (no filter:
   every client gets every event) on one fanout while the same capture is replayed live at
   --rate frames/s; fanout's CPU seconds (loadgen --server-pid) give deliveries per CPU second.
   clients per core = deliveries per CPU second / events per second of the firehose.
Everything runs on 127.0.0.1 in a temporary folder and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_common as dc  # noqa: E402
import live_stack_test as live  # noqa: E402


def write_capture(corpus: Path, out: Path, count: int) -> int:
    data = corpus.read_bytes()
    frames, pos = [], 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack("<I", data[pos:pos + 4])
        frames.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    key = b"\x63seq\x1b"
    with open(out, "wb") as fh:
        for i in range(count):
            frame = bytearray(frames[i % len(frames)])
            at = frame.find(key)
            frame[at + 5:at + 13] = struct.pack(">Q", i + 1)
            fh.write(struct.pack("<I", len(frame)) + frame)
    return len(frames)


def du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", type=Path, required=True)
    ap.add_argument("--shared-dir", type=Path, default=Path(os.environ.get("JETSTREAM_SHARED_DIR", dc.source_root().parent / "shared")))
    ap.add_argument("--frames", type=int, default=300000)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=2000, help="frames/s replayed live during the client run")
    ap.add_argument("--seconds", type=int, default=30)
    args = ap.parse_args()
    b = {n: str(dc.binary(args.build_dir.resolve(), n)) for n in ("ingest", "decode", "fanout", "frames")}
    loadgen = args.build_dir.resolve() / "tools/loadgen/jetstream-loadgen"
    dictionary = args.shared_dir / "zstd" / "jetstream-v1.zdict"
    work = Path(tempfile.mkdtemp(prefix="jetstream-sizing-"))
    procs = live.Processes(work)
    try:
        corpus_frames = write_capture(args.shared_dir / "corpus/dev.frames", work / "bench.frames", args.frames)
        ports = live.free_ports(12)
        up, fr, ctl, im, ev, rp, dm, fh, fm = ports[:9]
        dict_args = ["--zstd-dictionary-path", str(dictionary)] if dictionary.is_file() else []
        procs.start("serve", [b["frames"], "serve", str(work / "bench.frames"), "--listen", f"127.0.0.1:{up}", "--keep-open"], stdout_file=True)
        live.wait_for("serve", lambda: (work / "serve.out").is_file() and (work / "serve.out").read_text().startswith("ws"), 60, procs)
        url = (work / "serve.out").read_text().split()[0]
        procs.start("decode", [b["decode"], "--data-dir", str(work / "data"), "--frames-endpoint", f"tcp://127.0.0.1:{fr}",
                               "--control-endpoint", f"tcp://127.0.0.1:{ctl}", "--events-endpoint", f"tcp://127.0.0.1:{ev}",
                               "--replay-endpoint", f"tcp://127.0.0.1:{rp}", "--backfill-endpoint", f"tcp://127.0.0.1:{ports[10]}",
                               "--metrics-listen-addr", f"127.0.0.1:{dm}"] + dict_args)
        t0 = time.monotonic()
        procs.start("ingest", [b["ingest"], "--ws-url", url, "--frames-listen-addr", f"127.0.0.1:{fr}",
                               "--control-listen-addr", f"127.0.0.1:{ctl}", "--metrics-listen-addr", f"127.0.0.1:{im}"])
        live.wait_for("catch-up", lambda: live.scrape(dm).get("consumer_last_seq", 0) >= args.frames, 600, procs, 0.1)
        elapsed = time.monotonic() - t0
        m = live.scrape(dm)
        events = m["jetstream_decode_events_stored_total"]
        procs.stop("ingest")
        procs.stop("decode", timeout=30)
        on_disk = du_bytes(work / "data")
        print(f"capture: {args.frames} frames ({corpus_frames}-frame corpus repeated), {events:.0f} events stored")
        print(f"catch-up incl. start-up: {events / elapsed:,.0f} events/s ({elapsed:.1f} s)")
        print(f"event log: data dir after shutdown (RocksDB SST + WAL) {on_disk / events:,.0f} B/event")

        if not loadgen.is_file():
            print("jetstream-loadgen not built: client measurement skipped")
            return 0
        # Fresh pipeline: fanout + clients first, then the capture replayed live at --rate.
        procs.stop("serve")
        procs.start("serve2", [b["frames"], "serve", str(work / "bench.frames"), "--listen", f"127.0.0.1:{ports[9]}",
                               "--keep-open", "--rate", str(args.rate)], stdout_file=True)
        live.wait_for("serve2", lambda: (work / "serve2.out").is_file() and (work / "serve2.out").read_text().startswith("ws"), 60, procs)
        url = (work / "serve2.out").read_text().split()[0]
        procs.start("decode2", [b["decode"], "--data-dir", str(work / "data2"), "--frames-endpoint", f"tcp://127.0.0.1:{fr}",
                                "--control-endpoint", f"tcp://127.0.0.1:{ctl}", "--events-endpoint", f"tcp://127.0.0.1:{ev}",
                                "--replay-endpoint", f"tcp://127.0.0.1:{rp}", "--backfill-endpoint", f"tcp://127.0.0.1:{ports[11]}",
                               "--metrics-listen-addr", f"127.0.0.1:{dm}"] + dict_args)
        fan = procs.start("fanout", [b["fanout"], "--listen-addr", f"127.0.0.1:{fh}", "--metrics-listen-addr", f"127.0.0.1:{fm}",
                                     "--events-endpoint", f"tcp://127.0.0.1:{ev}", "--replay-endpoint", f"tcp://127.0.0.1:{rp}",
                                     "--max-sub-rate", "0"] + dict_args)
        live.wait_for("fanout ready", lambda: live.http_get(f"http://127.0.0.1:{fm}/readyz")[0] == 200, 60, procs)
        lg = subprocess.Popen([str(loadgen), "--url", f"ws://127.0.0.1:{fh}/subscribe", "--clients", str(args.clients),
                               "--duration", f"{args.seconds}s", "--server-pid", str(fan.pid), "--json", "--progress=false"],
                              stdout=subprocess.PIPE, stderr=open(work / "loadgen.log", "wb"), text=True)
        time.sleep(3)
        procs.start("ingest2", [b["ingest"], "--ws-url", url, "--frames-listen-addr", f"127.0.0.1:{fr}",
                                "--control-listen-addr", f"127.0.0.1:{ctl}", "--metrics-listen-addr", f"127.0.0.1:{im}"])
        out, _ = lg.communicate(timeout=args.seconds + 60)
        summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        fstats = live.scrape(fm)
        print(f"clients: {args.clients} on one fanout, capture replayed at {args.rate:.0f} frames/s for {args.seconds} s")
        print("loadgen summary: " + json.dumps(summary))
        print(f"fanout RSS {fstats.get('process_resident_memory_bytes', 0) / 2**20:.0f} MiB, "
              f"subscribers {fstats.get('jetstream_subscribers_connected', 0):.0f}, "
              f"client closes (all reasons) {live.scrape(fm).get('jetstream_fanout_client_closes_total', 0):.0f}")
        return 0
    finally:
        procs.stop_all()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    sys.exit(main())
