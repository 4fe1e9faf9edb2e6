"""Helpers shared by the deployment checks in tests/deploy (python3 stdlib + python3-yaml).

The checks never trust a list typed by hand: flags come from each binary's `--help` output when
the binary is built (the CMake binary dir is passed to the test), otherwise from the flag
registrations in the service sources; metric names come from the `.Name("...")` calls of the
probes and the process collector.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SKIP = 77  # CTest SKIP_RETURN_CODE of every deploy test

SERVICES = ("ingest", "decode", "fanout", "backfill")

# Where each service's flag registration and options struct live, relative to the source root.
FLAG_SOURCES = {
    "ingest": ("services/ingest/ingest_service.cpp", "services/ingest/ingest_service.hpp"),
    "decode": ("services/decode/decode_service.cpp", "services/decode/decode_service.hpp"),
    "fanout": ("services/fanout/fanout_service.cpp", "services/fanout/fanout_service.hpp"),
}

# Where each executable lands in a CMake build dir.
BINARY_PATHS = {
    "ingest": "services/ingest/jetstream-ingest",
    "decode": "services/decode/jetstream-decode",
    "fanout": "services/fanout/jetstream-fanout",
    "backfill": "services/backfill/jetstream-backfill",
    "frames": "tools/frames/jetstream-frames",
}

# The ports each service listens on, by the flag that sets them (the metrics port serves
# /metrics, /healthz and /readyz).
LISTEN_FLAGS = {
    "ingest": {"frames": "frames-listen-addr", "control": "control-listen-addr",
               "metrics": "metrics-listen-addr"},
    "decode": {"events": "events-endpoint", "replay": "replay-endpoint",
               "backfill": "backfill-endpoint", "metrics": "metrics-listen-addr"},
    "fanout": {"http": "listen-addr", "metrics": "metrics-listen-addr"},
    "backfill": {"metrics": "metrics-listen-addr"},
}

# Flags that connect to another service: flag -> (service, port name on that service).
CONNECT_FLAGS = {
    "decode": {"frames-endpoint": ("ingest", "frames"), "control-endpoint": ("ingest", "control")},
    "fanout": {"events-endpoint": ("decode", "events"), "replay-endpoint": ("decode", "replay")},
    "backfill": {"decode-backfill-endpoint": ("decode", "backfill"),
                 "decode-events-endpoint": ("decode", "events")},
}


def source_root() -> Path:
    return Path(__file__).resolve().parents[2]


class Failures:
    """Collects failed checks so one run reports all of them."""

    def __init__(self, name: str):
        self.name = name
        self.items: list[str] = []
        self.checked = 0

    def check(self, condition: bool, message: str) -> bool:
        self.checked += 1
        if not condition:
            self.items.append(message)
        return condition

    def fail(self, message: str) -> None:
        self.checked += 1
        self.items.append(message)

    def finish(self) -> int:
        if self.items:
            print(f"{self.name}: {len(self.items)} of {self.checked} checks FAILED:")
            for item in self.items:
                print(f"  - {item}")
            return 1
        print(f"{self.name}: all {self.checked} checks passed")
        return 0


def skip(message: str) -> None:
    print(f"SKIPPED: {message}")
    sys.exit(SKIP)


def load_yaml_all(text: str) -> list:
    try:
        import yaml  # Debian python3-yaml (scripts/install-deps.sh)
    except ImportError:
        print("python3-yaml is missing: run scripts/install-deps.sh (Debian package python3-yaml)")
        sys.exit(1)
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def load_yaml(path: Path):
    docs = load_yaml_all(path.read_text())
    return docs[0] if docs else None


# ---------------------------------------------------------------------------------------------
# Flags


@dataclass
class Flag:
    name: str
    kind: str  # string, int, bool, duration, float, host:port
    env: str
    help: str
    default: str  # as --help prints it, without quotes for strings


def env_var_name(flag: str) -> str:
    return "JETSTREAM_" + flag.upper().replace("-", "_")


_HELP_LINE = re.compile(r"^\s+--(?P<name>[a-z0-9-]+)(?: (?P<kind>\S+))?\s+(?P<env>JETSTREAM_[A-Z0-9_]+)\s+(?P<rest>.*)$")
_HELP_DEFAULT = re.compile(r"^(?P<help>.*?)\s*\(default (?P<default>.*)\)\s*$")


def parse_help(text: str) -> dict[str, Flag]:
    flags: dict[str, Flag] = {}
    for line in text.splitlines():
        m = _HELP_LINE.match(line)
        if not m:
            continue
        kind = m.group("kind") or "bool"
        rest = m.group("rest")
        d = _HELP_DEFAULT.match(rest)
        help_text, default = (d.group("help"), d.group("default")) if d else (rest, "")
        if default.startswith('"') and default.endswith('"') and len(default) >= 2:
            default = default[1:-1]
        flags[m.group("name")] = Flag(m.group("name"), kind, m.group("env"), help_text.strip(), default)
    return flags


def binary(build_dir: Path | None, name: str) -> Path | None:
    if build_dir is None:
        return None
    path = build_dir / BINARY_PATHS[name]
    return path if path.is_file() and os.access(path, os.X_OK) else None


def help_text(path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETSTREAM_")}
    out = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=20, env=env)
    return out.stdout


_ADD_FLAG = re.compile(r'flags\.add_(?P<kind>\w+)\(\s*"(?P<name>[a-z0-9-]+)",\s*&o\.(?P<field>\w+)')
_KIND = {"string": "string", "int64": "int", "bool": "bool", "duration": "duration",
         "double": "float", "listen_address": "host:port"}


_CHRONO_UNITS = {"hours": "h", "minutes": "m", "seconds": "s", "milliseconds": "ms",
                 "microseconds": "us"}


def _normalize_default(value: str) -> str:
    """A C++ initializer as `--help` prints it: `"x"` -> x, `std::chrono::seconds(60)` -> 1m,
    `100'000` -> 100000, `std::int64_t{256} << 20` -> 268435456 (best effort)."""
    s = re.match(r'^"(.*)"$', value)
    if s:
        return s.group(1)
    c = re.match(r"^std::chrono::(\w+)\((\d+)\)$", value)
    if c and c.group(1) in _CHRONO_UNITS:
        n, unit = int(c.group(2)), _CHRONO_UNITS[c.group(1)]
        if unit == "s" and n and n % 3600 == 0:
            return f"{n // 3600}h"
        if unit == "s" and n and n % 60 == 0:
            return f"{n // 60}m"
        if unit == "m" and n and n % 60 == 0:
            return f"{n // 60}h"
        return f"{n}{unit}"
    plain = re.sub(r"std::u?int\d+_t\{(\d+)\}", r"\1", value).replace("'", "")
    if re.fullmatch(r"[\d\s<+*-]+", plain):
        try:
            return str(eval(plain, {"__builtins__": {}}))  # digits and shifts only
        except Exception:  # noqa: BLE001
            return value
    return value


def _struct_defaults(header: str) -> dict[str, str]:
    """field name -> default as written in the options struct (best effort, used for ports)."""
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*[\w:<>]+\s+(\w+)\s*(?:=\s*(.+?)|\{(.*?)\})\s*;", header, re.M):
        field, assigned, braced = m.group(1), m.group(2), m.group(3)
        if assigned is not None:
            out[field] = _normalize_default(assigned.strip())
        elif braced is not None:
            parts = [p.strip() for p in braced.split(",")]
            if len(parts) == 2 and parts[0].startswith('"'):  # ListenAddress{"host", port}
                out[field] = f"{parts[0].strip(chr(34))}:{parts[1]}"
            else:
                out[field] = braced.strip()
        else:
            out[field] = ""
    return out


def flags_from_source(service: str, root: Path | None = None) -> dict[str, Flag]:
    root = root or source_root()
    cpp, hpp = (root / p for p in FLAG_SOURCES[service])
    if not cpp.is_file():
        return {}
    defaults = _struct_defaults(hpp.read_text()) if hpp.is_file() else {}
    flags: dict[str, Flag] = {}
    for m in _ADD_FLAG.finditer(cpp.read_text()):
        name = m.group("name")
        flags[name] = Flag(name, _KIND.get(m.group("kind"), m.group("kind")), env_var_name(name), "",
                           defaults.get(m.group("field"), ""))
    return flags


def service_flags(service: str, build_dir: Path | None) -> tuple[dict[str, Flag], str]:
    """The flags of one service and where they were read from (`--help` of the binary, or
    the sources when it is not built)."""
    path = binary(build_dir, service)
    if path is not None:
        flags = parse_help(help_text(path))
        if flags:
            return flags, f"{path} --help"
    return flags_from_source(service), f"{FLAG_SOURCES[service][0]} (binary not built)"


def port_of(value: str) -> int | None:
    """The port of a listen address or ZeroMQ endpoint: `:6010`, `127.0.0.1:6010`,
    `tcp://*:6012`, `tcp://decode:6012`."""
    m = re.search(r":(\d+)$", value.strip())
    return int(m.group(1)) if m else None


def host_of(value: str) -> str | None:
    m = re.match(r"^(?:tcp://)?(?P<host>\[[^\]]*\]|[^:/]*):\d+$", value.strip())
    return m.group("host") if m else None


# ---------------------------------------------------------------------------------------------
# Metrics


def metric_names(root: Path | None = None) -> dict[str, str]:
    """Every metric family name the code exports -> its type (counter, gauge, histogram), read
    from the `.Name("...")` calls of the probes and common/metrics."""
    root = root or source_root()
    names: dict[str, str] = {}
    files = list((root / "services").rglob("*.cpp")) + list((root / "common" / "metrics").rglob("*.cpp"))
    for path in files:
        text = path.read_text(errors="replace")
        for m in re.finditer(r'Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\("([a-zA-Z_:][a-zA-Z0-9_:]*)"\)', text):
            names[m.group(2)] = m.group(1).lower()
        for m in re.finditer(r'family\("([a-zA-Z_:][a-zA-Z0-9_:]*)",\s*"[^"]*",\s*MetricType::(\w+)', text, re.S):
            names[m.group(1)] = m.group(2).lower()
    return names


def expand_metric_names(names: dict[str, str]) -> set[str]:
    """Names as they appear in PromQL: histogram families add _bucket, _sum and _count."""
    out: set[str] = set()
    for name, kind in names.items():
        out.add(name)
        if kind == "histogram":
            out.update({name + "_bucket", name + "_sum", name + "_count"})
        if kind == "summary":
            out.update({name + "_sum", name + "_count"})
    return out


# Names Prometheus itself attaches to every target.
SYNTHETIC_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added"}

_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "offset", "bool", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "predict_linear", "histogram_quantile", "abs", "ceil", "floor", "round", "clamp",
    "clamp_min", "clamp_max", "time", "timestamp", "vector", "scalar", "label_replace",
    "label_join", "sort", "sort_desc", "absent", "absent_over_time", "changes", "resets",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time", "present_over_time", "exp", "ln", "log2", "log10",
    "sqrt", "day_of_month", "day_of_week", "hour", "minute", "month", "year", "days_in_month",
    "inf", "nan", "atan2", "sgn", "holt_winters",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (identifiers outside label matchers,
    strings and `by (...)`/`on (...)` lists that are not functions or keywords)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+(e\d+)?", word) or re.fullmatch(r"[0-9.]+[smhdwy]", word):
            continue
        names.add(word)
    return names


def which(tool: str) -> str | None:
    return shutil.which(tool)
