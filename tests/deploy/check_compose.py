#!/usr/bin/env python3
"""docker-compose.yml, checked without a Docker engine (the YAML is parsed):

  - the services: ingest, decode, fanout (2 replicas), a load balancer, prometheus, grafana;
  - every JETSTREAM_* variable of a service is one of its flags;
  - every listen address in the environment keeps the flag's default port, and the service
    exposes exactly its listen ports;
  - decode's and fanout's connect endpoints name the compose service and port that listens;
  - decode's data dir is on a named volume; the zstd dictionary path is a mounted file in
    decode and fanout;
  - the Prometheus config scrapes every service at its metrics port, by compose service name;
  - HAProxy sends :6008 to the fanout service's websocket port, checks /readyz on its metrics
    port, and passes websockets (timeout tunnel); `haproxy -c` when haproxy is installed;
  - Grafana mounts the provisioning and the dashboards where the provisioning says, and the
    data source URL is the prometheus service.

usage: check_compose.py [--build-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_common as dc  # noqa: E402

ROOT = dc.source_root()


def interpolate(value) -> str:
    """Compose's ${VAR:-default} / ${VAR-default} with the variable unset -> default."""
    text = str(value)
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", text)


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: interpolate(v) for k, v in env.items()}


def volume_targets(service: dict) -> dict[str, str]:
    """container path -> source (named volume or host path)."""
    out = {}
    for v in service.get("volumes", []) or []:
        if isinstance(v, dict):
            out[v["target"]] = interpolate(v.get("source", ""))
        else:
            parts = interpolate(v).split(":")
            out[parts[1]] = parts[0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", type=Path)
    args = parser.parse_args()
    f = dc.Failures("compose")
    compose = dc.load_yaml(ROOT / "docker-compose.yml")
    services = compose.get("services", {})
    named_volumes = set((compose.get("volumes") or {}).keys())

    flags = {}
    for s in dc.SERVICES:
        flags[s], source = dc.service_flags(s, args.build_dir)
        print(f"flags of {s}: {len(flags[s])} from {source}")
        f.check(s in services, f"no compose service {s}")
    if not all(s in services for s in dc.SERVICES):
        return f.finish()

    replicas = (services["fanout"].get("deploy") or {}).get("replicas", 1)
    f.check(replicas >= 2, f"fanout must run at least 2 replicas, has {replicas}")
    for s in ("ingest", "decode"):
        f.check((services[s].get("deploy") or {}).get("replicas", 1) == 1, f"{s} must be a single replica")

    listen_ports: dict[str, dict[str, int]] = {}
    envs = {}
    for s in dc.SERVICES:
        svc, env = services[s], env_of(services[s])
        envs[s] = env
        f.check(svc.get("command", [None])[0] == f"jetstream-{s}", f"{s}: command must start jetstream-{s}")
        known = {fl.env: fl for fl in flags[s].values()}
        for var in env:
            if var.startswith("JETSTREAM_"):
                f.check(var in known, f"{s}: {var} is not a flag of jetstream-{s}")
            else:
                f.fail(f"{s}: {var} is not a JETSTREAM_* variable")
        ports = {}
        for role, flag in dc.LISTEN_FLAGS[s].items():
            fl = flags[s].get(flag)
            if not f.check(fl is not None, f"{s}: no flag --{flag}"):
                continue
            default_port = dc.port_of(fl.default)
            value = env.get(fl.env, fl.default)
            f.check(dc.port_of(value) == default_port,
                    f"{s}: {fl.env}={value} does not keep the default port {default_port}")
            ports[role] = dc.port_of(value)
        listen_ports[s] = ports
        exposed = {int(str(p).split("/")[0]) for p in svc.get("expose", []) or []}
        f.check(exposed == set(ports.values()), f"{s}: expose {sorted(exposed)} != listen ports {sorted(ports.values())}")
        for mapping in svc.get("ports", []) or []:
            container_port = int(str(mapping).split(":")[-1].split("/")[0])
            f.check(container_port in ports.values(), f"{s}: published port {mapping} is not a listen port")
        f.check(svc.get("stop_grace_period") is not None, f"{s}: set stop_grace_period")

    # Connect endpoints.
    for s, connects in dc.CONNECT_FLAGS.items():
        for flag, (target, role) in connects.items():
            fl = flags[s][flag]
            value = envs[s].get(fl.env, fl.default)
            f.check(dc.host_of(value) == target and dc.port_of(value) == listen_ports[target].get(role),
                    f"{s}: {fl.env}={value}, want tcp://{target}:{listen_ports[target].get(role)}")

    # Volumes: decode's data dir on a named volume; the dictionary mounted.
    dvols = volume_targets(services["decode"])
    data_dir = envs["decode"].get("JETSTREAM_DATA_DIR", flags["decode"]["data-dir"].default)
    f.check(dvols.get(data_dir) in named_volumes, f"decode: data dir {data_dir} is not a named volume ({dvols})")
    for s in ("decode", "fanout"):
        path = envs[s].get("JETSTREAM_ZSTD_DICTIONARY_PATH", "")
        f.check(bool(path) and path in volume_targets(services[s]),
                f"{s}: JETSTREAM_ZSTD_DICTIONARY_PATH={path!r} is not a mounted file")

    # Prometheus scrapes every service by compose name at its metrics port.
    prom = services.get("prometheus")
    if f.check(prom is not None, "no prometheus service"):
        pvols = volume_targets(prom)
        config_dir = next((src for dst, src in pvols.items() if dst == "/etc/prometheus"), None)
        f.check(config_dir is not None and (ROOT / config_dir).resolve() == (ROOT / "deploy/prometheus").resolve(),
                "prometheus must mount deploy/prometheus at /etc/prometheus")
        config = dc.load_yaml(ROOT / "deploy/prometheus/prometheus.yml")
        targets = set()
        for job in config.get("scrape_configs", []):
            for sc in job.get("static_configs", []):
                targets.update(sc.get("targets", []))
            for sd in job.get("dns_sd_configs", []):
                targets.update(f"{n}:{sd.get('port')}" for n in sd.get("names", []))
        for s in dc.SERVICES:
            want = f"{s}:{listen_ports[s]['metrics']}"
            f.check(want in targets, f"prometheus does not scrape {want}")
        for t in targets:
            host = t.split(":")[0]
            f.check(host in services or host == "localhost", f"prometheus target {t}: no compose service {host}")

    # Load balancer.
    lb_name = next((n for n, s in services.items() if "haproxy" in str(s.get("image", ""))), None)
    if f.check(lb_name is not None, "no HAProxy load balancer service"):
        lb = services[lb_name]
        cfg_path = next((src for dst, src in volume_targets(lb).items() if dst.endswith("haproxy.cfg")), None)
        if f.check(cfg_path is not None, "the load balancer does not mount a haproxy.cfg"):
            cfg = (ROOT / cfg_path).read_text()
            http = listen_ports["fanout"]["http"]
            metrics = listen_ports["fanout"]["metrics"]
            f.check(re.search(rf"^\s*server(-template)?\s+\S+\s+(\d+\s+)?fanout:{http}\b", cfg, re.M) is not None,
                    f"haproxy.cfg must send traffic to fanout:{http}")
            f.check(re.search(rf"check port {metrics}\b", cfg) is not None and "/readyz" in cfg,
                    f"haproxy.cfg must health-check /readyz on fanout's metrics port {metrics}")
            f.check(re.search(r"^\s*timeout tunnel\s+\S+", cfg, re.M) is not None, "haproxy.cfg: no timeout tunnel (websockets)")
            f.check(re.search(r"^\s*mode http", cfg, re.M) is not None, "haproxy.cfg: websocket upgrade needs mode http")
            binds = {int(m) for m in re.findall(r"^\s*bind\s+\S*:(\d+)", cfg, re.M)}
            published = {int(str(p).split(":")[-1]) for p in lb.get("ports", [])}
            f.check(http in binds and http in published, f"the load balancer must listen on and publish {http}")
            f.check(f"{lb_name}:8405" in targets if prom else True, "prometheus should scrape HAProxy's exporter")
            # The one-machine config of the scale-out e2e test keeps the compose config's settings.
            loopback = (ROOT / "deploy/haproxy/loopback.cfg").read_text()
            for setting in (r"balance leastconn", r"option httpchk", r"http-check send meth GET uri /readyz",
                            r"timeout tunnel 1h", r"option forwardfor", r"mode http"):
                f.check(re.search(setting, cfg) is not None and re.search(setting, loopback) is not None,
                        f"haproxy.cfg and loopback.cfg must both have `{setting}`")
            haproxy = dc.which("haproxy")
            if haproxy:
                out = subprocess.run([haproxy, "-c", "-f", str(ROOT / cfg_path)], capture_output=True, text=True, timeout=30)
                f.check(out.returncode == 0, f"haproxy -c failed: {out.stdout}{out.stderr}")
                env = dict(os.environ, JETSTREAM_LB_BIND="127.0.0.1:6008", JETSTREAM_LB_STATS_BIND="127.0.0.1:8405")
                for i in (1, 2, 3):
                    env[f"JETSTREAM_FANOUT_{i}"] = f"127.0.0.1:{16008 + 10 * i}"
                    env[f"JETSTREAM_FANOUT_{i}_METRICS"] = str(16009 + 10 * i)
                out = subprocess.run([haproxy, "-c", "-f", str(ROOT / "deploy/haproxy/loopback.cfg")],
                                     capture_output=True, text=True, timeout=30, env=env)
                f.check(out.returncode == 0, f"haproxy -c of loopback.cfg failed: {out.stdout}{out.stderr}")
            else:
                print("note: haproxy is not installed; `haproxy -c` skipped (the rest of haproxy.cfg is checked)")

    # Grafana provisioning.
    graf = services.get("grafana")
    if f.check(graf is not None, "no grafana service"):
        gvols = volume_targets(graf)
        prov = gvols.get("/etc/grafana/provisioning")
        f.check(prov is not None and (ROOT / prov).resolve() == (ROOT / "deploy/grafana/provisioning").resolve(),
                "grafana must mount deploy/grafana/provisioning at /etc/grafana/provisioning")
        providers = dc.load_yaml(ROOT / "deploy/grafana/provisioning/dashboards/jetstream.yml")["providers"]
        for p in providers:
            path = p["options"]["path"]
            src = gvols.get(path)
            f.check(src is not None and (ROOT / src).resolve() == (ROOT / "dashboards").resolve(),
                    f"grafana: dashboards provider path {path} is not the mounted dashboards/ folder")
        ds = dc.load_yaml(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"]
        prom_port = 9090
        for mapping in (prom or {}).get("ports", []):
            prom_port = int(str(mapping).split(":")[-1])
        f.check(any(d["type"] == "prometheus" and d["url"] == f"http://prometheus:{prom_port}" for d in ds),
                "grafana data source must be http://prometheus:9090")
    return f.finish()


if __name__ == "__main__":
    sys.exit(main())
