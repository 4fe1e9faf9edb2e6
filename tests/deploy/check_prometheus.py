#!/usr/bin/env python3
"""Prometheus configuration of the deployments.

Checks:
  - `promtool check config deploy/prometheus/prometheus.yml` (which also checks the rule files
    it names) and `promtool check rules` on every rule file;
  - every scrape job of a service targets that service's metrics port (the flag default);
  - every metric an alert rule names is exported by the code;
  - k8s/components/prometheus-operator/prometheusrule.yaml holds exactly the groups of
    deploy/prometheus/rules/jetstream.rules.yml (`--write-k8s-rule` regenerates it).

usage: check_prometheus.py [--build-dir DIR] [--write-k8s-rule]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_common as dc  # noqa: E402

ROOT = dc.source_root()
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules" / "jetstream.rules.yml"
K8S_RULE = ROOT / "k8s" / "components" / "prometheus-operator" / "prometheusrule.yaml"

K8S_RULE_HEADER = """\
# GENERATED from deploy/prometheus/rules/jetstream.rules.yml by
#   python3 tests/deploy/check_prometheus.py --write-k8s-rule
# Edit the rules file, not this one (tests/deploy checks they agree).
"""


def k8s_rule_text() -> str:
    import yaml

    groups = dc.load_yaml(RULES)["groups"]
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "jetstream", "labels": {"app.kubernetes.io/name": "jetstream",
                                                     "app.kubernetes.io/part-of": "jetstream"}},
        "spec": {"groups": groups},
    }
    return K8S_RULE_HEADER + yaml.safe_dump(doc, sort_keys=False, width=100)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", type=Path)
    parser.add_argument("--write-k8s-rule", action="store_true")
    args = parser.parse_args()

    if args.write_k8s_rule:
        K8S_RULE.write_text(k8s_rule_text())
        print(f"wrote {K8S_RULE.relative_to(ROOT)}")
        return 0

    f = dc.Failures("prometheus config")
    promtool = dc.which("promtool")
    if not promtool:
        print("promtool is missing: run scripts/install-deps.sh (Debian package prometheus)")
        return 1

    out = subprocess.run([promtool, "check", "config", str(PROM_DIR / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    print(out.stdout + out.stderr)
    f.check(out.returncode == 0, "promtool check config deploy/prometheus/prometheus.yml failed")
    rule_files = sorted((PROM_DIR / "rules").glob("*.yml"))
    f.check(bool(rule_files), "no rule file under deploy/prometheus/rules")
    for rule_file in rule_files:
        out = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True,
                             text=True, timeout=60)
        print(out.stdout + out.stderr)
        f.check(out.returncode == 0, f"promtool check rules {rule_file.relative_to(ROOT)} failed")

    # Scrape jobs -> the metrics port of each service.
    config = dc.load_yaml(PROM_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    for service in dc.SERVICES:
        flags, source = dc.service_flags(service, args.build_dir)
        metrics_port = dc.port_of(flags["metrics-listen-addr"].default) if "metrics-listen-addr" in flags else None
        job = jobs.get(f"jetstream-{service}")
        if not f.check(job is not None, f"no scrape job jetstream-{service}"):
            continue
        ports = set()
        for sc in job.get("static_configs", []):
            ports.update(dc.port_of(t) for t in sc.get("targets", []))
        for sd in job.get("dns_sd_configs", []):
            ports.add(sd.get("port"))
        f.check(ports == {metrics_port},
                f"job jetstream-{service} scrapes ports {sorted(p for p in ports if p)}, "
                f"but {service}'s metrics port is {metrics_port} (from {source})")
        f.check(job.get("metrics_path", "/metrics") == "/metrics", f"job jetstream-{service}: metrics_path")

    # Metric names in rules exist.
    known = dc.expand_metric_names(dc.metric_names()) | dc.SYNTHETIC_METRICS
    for rule_file in rule_files:
        for group in dc.load_yaml(rule_file)["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                for metric in dc.promql_metric_names(rule["expr"]):
                    f.check(metric in known, f"rule {name}: metric {metric} is not exported by the code")
                if "alert" in rule:
                    f.check("severity" in rule.get("labels", {}), f"alert {name} has no severity label")
                    f.check("summary" in rule.get("annotations", {}), f"alert {name} has no summary")

    # The PrometheusRule for Kubernetes is the same rules.
    if f.check(K8S_RULE.is_file(), f"{K8S_RULE.relative_to(ROOT)} is missing"):
        k8s_doc = dc.load_yaml(K8S_RULE)
        f.check(k8s_doc.get("kind") == "PrometheusRule", "prometheusrule.yaml is not a PrometheusRule")
        f.check(k8s_doc.get("spec", {}).get("groups") == dc.load_yaml(RULES)["groups"],
                "k8s PrometheusRule differs from deploy/prometheus/rules/jetstream.rules.yml: run "
                "python3 tests/deploy/check_prometheus.py --write-k8s-rule")
    return f.finish()


if __name__ == "__main__":
    sys.exit(main())
