#!/usr/bin/env python3
"""Kubernetes manifests: `kubectl kustomize` renders every overlay, then the rendered objects
are checked (no cluster needed):

  - ingest: Deployment, 1 replica, strategy Recreate; decode: StatefulSet, 1 replica, a volume
    claim template mounted at JETSTREAM_DATA_DIR, a governing headless Service; fanout:
    Deployment with a HorizontalPodAutoscaler, a PodDisruptionBudget and a Service of type
    LoadBalancer;
  - selectors: every workload's selector matches its pod labels; every Service, PDB and
    NetworkPolicy selects exactly the pods it means to; the HPA targets the fanout Deployment;
  - configuration: every JETSTREAM_* variable (from ConfigMaps or env) is a flag of that
    service; every referenced ConfigMap exists, except the operator-made zstd dictionary;
  - ports: every container port equals the default of the flag that binds it, and no
    configuration moves it; endpoints decode and fanout connect to name a Service that routes
    to the right container port;
  - probes: liveness /healthz and readiness /readyz (startup /healthz) on the metrics port;
  - resources: requests and limits for cpu and memory, requests <= limits;
  - NetworkPolicy: only fanout pods reach decode's events/replay ports, only decode pods reach
    ingest's frames/control ports;
  - monitoring: prometheus.io/scrape|port|path annotations on every pod template naming the
    metrics port; with the Prometheus Operator component (prod) a ServiceMonitor that selects
    a `metrics` port of every service and a PrometheusRule;
  - the zstd dictionary path is a file of a mounted ConfigMap volume;
  - termination: fanout's grace period covers preStop + JETSTREAM_SHUTDOWN_GRACE (closing
    clients with 1001), decode's covers preStop + its 10 s flush;
  - non-root pods, no service links (no stray *_SERVICE_HOST variables).

usage: check_k8s.py [--build-dir DIR]   (flags from the built binaries' --help, else sources)
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
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
DICTIONARY_CONFIGMAP = "jetstream-zstd-dictionary"
DECODE_FLUSH_SECONDS = 10  # decode's shutdown lets batches in flight be stored for at most 10 s
WORKLOADS = {"ingest": ("Deployment", "ingest"), "decode": ("StatefulSet", "decode"),
             "fanout": ("Deployment", "fanout"), "backfill": ("Deployment", "backfill")}


def duration_seconds(text: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(h|ms|us|µs|ns|m|s)", text):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6,
                                  "µs": 1e-6, "ns": 1e-9}[unit]
    return total


def quantity(value) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6,
             "G": 1e9, "T": 1e12}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def matches(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels/matchExpressions, or a plain map for Services)."""
    if selector is None:
        return False
    match_labels = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if "matchLabels" in selector:
        match_labels = selector["matchLabels"]
    for key, value in (match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []) or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def sleep_seconds(lifecycle: dict | None) -> float:
    command = ((lifecycle or {}).get("preStop") or {}).get("exec", {}).get("command", [])
    if len(command) >= 2 and os.path.basename(command[0]) == "sleep":
        return duration_seconds(command[1]) if not command[1].isdigit() else float(command[1])
    sleep = ((lifecycle or {}).get("preStop") or {}).get("sleep", {})
    return float(sleep.get("seconds", 0))


class Render:
    def __init__(self, docs: list[dict]):
        self.docs = docs

    def of(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict | None:
        for d in self.of(kind):
            if d["metadata"]["name"] == name:
                return d
        return None


def check_overlay(name: str, render: Render, flags: dict, f: dc.Failures) -> None:
    p = f"[{name}]"
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in render.of("ConfigMap")}
    workloads = {}
    for service, (kind, wname) in WORKLOADS.items():
        w = render.get(kind, wname)
        if f.check(w is not None, f"{p} no {kind} {wname}"):
            workloads[service] = w
    if len(workloads) != len(WORKLOADS):
        return
    pod_labels = {s: w["spec"]["template"]["metadata"].get("labels", {}) for s, w in workloads.items()}

    for d in render.docs:
        labels = d["metadata"].get("labels", {})
        if d["kind"] != "Namespace":
            f.check(labels.get("app.kubernetes.io/part-of") == "jetstream",
                    f"{p} {d['kind']}/{d['metadata']['name']} lacks app.kubernetes.io/part-of=jetstream")
            f.check(bool(d["metadata"].get("namespace")) or d["kind"] == "Namespace",
                    f"{p} {d['kind']}/{d['metadata']['name']} has no namespace")

    # --- shape of each workload
    ingest, decode, fanout = workloads["ingest"], workloads["decode"], workloads["fanout"]
    f.check(ingest["spec"].get("replicas") == 1, f"{p} ingest replicas must be 1")
    f.check(ingest["spec"].get("strategy", {}).get("type") == "Recreate", f"{p} ingest strategy must be Recreate")
    backfill = workloads["backfill"]
    f.check(backfill["spec"].get("replicas") == 1, f"{p} backfill replicas must be 1")
    f.check(backfill["spec"].get("strategy", {}).get("type") == "Recreate",
            f"{p} backfill strategy must be Recreate (two would fetch every repository twice)")
    bf_env_dir = next((m["mountPath"] for m in backfill["spec"]["template"]["spec"]["containers"][0].get("volumeMounts", [])
                       if any(v["name"] == m["name"] and "persistentVolumeClaim" in v
                              for v in backfill["spec"]["template"]["spec"].get("volumes", []))), None)
    f.check(bf_env_dir is not None, f"{p} backfill's store needs a persistent volume")
    f.check(decode["spec"].get("replicas") == 1, f"{p} decode replicas must be 1")
    vcts = decode["spec"].get("volumeClaimTemplates", [])
    f.check(len(vcts) == 1 and quantity(vcts[0]["spec"]["resources"]["requests"]["storage"]) > 0,
            f"{p} decode needs one volumeClaimTemplate with a storage request")
    governing = render.get("Service", decode["spec"].get("serviceName", ""))
    f.check(governing is not None and governing["spec"].get("clusterIP") == "None"
            and matches(governing["spec"].get("selector"), pod_labels["decode"]),
            f"{p} decode's serviceName must name a headless Service selecting decode")

    # --- selectors
    for service, w in workloads.items():
        f.check(matches(w["spec"]["selector"], pod_labels[service]),
                f"{p} {service}: selector does not match its pod template labels")
        for other, labels in pod_labels.items():
            if other != service:
                f.check(not matches(w["spec"]["selector"], labels),
                        f"{p} {service}'s selector also matches {other}'s pods")
    for svc in render.of("Service"):
        selected = [s for s, labels in pod_labels.items() if matches(svc["spec"].get("selector"), labels)]
        f.check(len(selected) == 1, f"{p} Service {svc['metadata']['name']} selects {selected}, want exactly one workload")
    hpas = render.of("HorizontalPodAutoscaler")
    f.check(len(hpas) == 1, f"{p} want exactly one HPA, have {len(hpas)}")
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        f.check(ref.get("kind") == "Deployment" and ref.get("name") == fanout["metadata"]["name"],
                f"{p} HPA must target Deployment fanout, targets {ref}")
        lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
        f.check(1 <= lo <= hi, f"{p} HPA min/max replicas {lo}/{hi}")
        f.check(bool(hpa["spec"].get("metrics")), f"{p} HPA has no metrics")
        f.check(fanout["spec"].get("replicas", 1) >= lo, f"{p} fanout replicas below HPA minReplicas")
    pdbs = render.of("PodDisruptionBudget")
    f.check(len(pdbs) == 1, f"{p} want exactly one PodDisruptionBudget")
    for pdb in pdbs:
        f.check(matches(pdb["spec"]["selector"], pod_labels["fanout"])
                and not matches(pdb["spec"]["selector"], pod_labels["decode"])
                and not matches(pdb["spec"]["selector"], pod_labels["ingest"]),
                f"{p} PDB must select fanout pods only")
        f.check("maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"], f"{p} PDB has no budget")
    lbs = [s for s in render.of("Service") if s["spec"].get("type") == "LoadBalancer"]
    f.check(len(lbs) == 1 and matches(lbs[0]["spec"]["selector"], pod_labels["fanout"]),
            f"{p} want one LoadBalancer Service, selecting fanout")

    # --- containers: config, ports, probes, resources
    service_ports: dict[str, dict[str, int]] = {}
    effective_env: dict[str, dict[str, str]] = {}
    for service, w in workloads.items():
        spec = w["spec"]["template"]["spec"]
        containers = spec["containers"]
        f.check(len(containers) == 1, f"{p} {service}: want one container")
        c = containers[0]
        f.check(c.get("command", [None])[0] == f"jetstream-{service}",
                f"{p} {service}: command must start jetstream-{service}")
        f.check(":" in c.get("image", "") and not c["image"].endswith(":latest"),
                f"{p} {service}: image {c.get('image')} needs an explicit tag")
        env: dict[str, str] = {}
        for ref in c.get("envFrom", []):
            cm = ref.get("configMapRef", {}).get("name")
            if f.check(cm in configmaps, f"{p} {service}: envFrom ConfigMap {cm} is not in the render"):
                env.update(configmaps[cm])
        for item in c.get("env", []):
            env[item["name"]] = item.get("value", "")
        effective_env[service] = env
        known = {fl.env for fl in flags[service].values()}
        for var in env:
            f.check(var in known, f"{p} {service}: {var} is not a flag of jetstream-{service}")

        ports = {port["name"]: port["containerPort"] for port in c.get("ports", [])}
        service_ports[service] = ports
        for role, flag in dc.LISTEN_FLAGS[service].items():
            fl = flags[service].get(flag)
            if not f.check(fl is not None, f"{p} {service}: flag --{flag} not found"):
                continue
            default_port = dc.port_of(fl.default)
            f.check(ports.get(role) == default_port,
                    f"{p} {service}: container port '{role}' is {ports.get(role)}, flag --{flag} default is {fl.default}")
            if fl.env in env:
                f.check(dc.port_of(env[fl.env]) == default_port,
                        f"{p} {service}: {fl.env}={env[fl.env]} moves the port away from the container port {default_port}")
        f.check(set(ports) == set(dc.LISTEN_FLAGS[service]),
                f"{p} {service}: container ports {sorted(ports)} != listeners {sorted(dc.LISTEN_FLAGS[service])}")

        def probe_port(probe):
            port = probe.get("httpGet", {}).get("port")
            return ports.get(port) if isinstance(port, str) else port

        metrics_port = ports.get("metrics")
        for kind, path, required in (("livenessProbe", "/healthz", True), ("readinessProbe", "/readyz", True),
                                     ("startupProbe", "/healthz", False)):
            probe = c.get(kind)
            if probe is None:
                f.check(not required, f"{p} {service}: no {kind}")
                continue
            f.check(probe.get("httpGet", {}).get("path") == path, f"{p} {service}: {kind} path must be {path}")
            f.check(probe_port(probe) == metrics_port and metrics_port is not None,
                    f"{p} {service}: {kind} port must be the metrics port {metrics_port}")

        res = c.get("resources", {})
        for key in ("cpu", "memory"):
            req, lim = res.get("requests", {}).get(key), res.get("limits", {}).get(key)
            if f.check(req is not None and lim is not None, f"{p} {service}: {key} request and limit required"):
                f.check(quantity(req) <= quantity(lim), f"{p} {service}: {key} request {req} > limit {lim}")

        ann = w["spec"]["template"]["metadata"].get("annotations", {})
        f.check(ann.get("prometheus.io/scrape") == "true", f"{p} {service}: prometheus.io/scrape")
        f.check(ann.get("prometheus.io/port") == str(metrics_port), f"{p} {service}: prometheus.io/port != {metrics_port}")
        f.check(ann.get("prometheus.io/path") == "/metrics", f"{p} {service}: prometheus.io/path")

        sec = spec.get("securityContext", {})
        f.check(sec.get("runAsNonRoot") is True and sec.get("runAsUser", 0) != 0, f"{p} {service}: must run as non-root")
        f.check(spec.get("enableServiceLinks") is False, f"{p} {service}: enableServiceLinks must be false")

        # The zstd dictionary: a file of a mounted ConfigMap.
        dict_var = dc.env_var_name("zstd-dictionary-path")
        if service in ("decode", "fanout"):
            path = env.get(dict_var, "")
            if f.check(bool(path), f"{p} {service}: {dict_var} not set"):
                volumes = {v["name"]: v for v in spec.get("volumes", [])}
                ok = False
                for m in c.get("volumeMounts", []):
                    v = volumes.get(m["name"], {})
                    cm = v.get("configMap")
                    if cm and os.path.dirname(path) == m["mountPath"].rstrip("/"):
                        items = {i["path"]: i["key"] for i in cm.get("items", [])}
                        base = os.path.basename(path)
                        ok = cm.get("name") == DICTIONARY_CONFIGMAP and (base in items or not items) \
                            and not cm.get("optional", False)
                f.check(ok, f"{p} {service}: {path} is not a file of the mounted ConfigMap {DICTIONARY_CONFIGMAP}")

    # Data dir on the PVC.
    data_dir = effective_env["decode"].get("JETSTREAM_DATA_DIR", flags["decode"]["data-dir"].default)
    mounts = decode["spec"]["template"]["spec"]["containers"][0].get("volumeMounts", [])
    f.check(any(m["name"] == vcts[0]["metadata"]["name"] and
                (data_dir + "/").startswith(m["mountPath"].rstrip("/") + "/") for m in mounts) if vcts else False,
            f"{p} decode data dir {data_dir} is not on the volume claim")

    # Connect endpoints route to the right container port through a Service.
    for service, connects in dc.CONNECT_FLAGS.items():
        for flag, (target, role) in connects.items():
            fl = flags[service][flag]
            value = effective_env[service].get(fl.env, fl.default)
            host, port = dc.host_of(value), dc.port_of(value)
            svc = render.get("Service", host or "")
            if not f.check(svc is not None, f"{p} {service} --{flag}={value}: no Service named {host}"):
                continue
            f.check(matches(svc["spec"].get("selector"), pod_labels[target]),
                    f"{p} Service {host} (used by {service} --{flag}) does not select {target}")
            sp = [x for x in svc["spec"]["ports"] if x["port"] == port]
            if f.check(len(sp) == 1, f"{p} Service {host} has no port {port} for {service} --{flag}"):
                tp = sp[0].get("targetPort", port)
                tp = service_ports[target].get(tp) if isinstance(tp, str) else tp
                f.check(tp == service_ports[target].get(role),
                        f"{p} Service {host}:{port} targets {tp}, {target}'s {role} port is {service_ports[target].get(role)}")
            f.check(svc["spec"].get("publishNotReadyAddresses") is True,
                    f"{p} Service {host} must publish not-ready addresses (readiness of {target} is not a routing signal)")

    # NetworkPolicy: protected ports reachable only from the one allowed workload.
    protected = [("decode", "fanout", ("events", "replay")), ("decode", "backfill", ("events", "backfill")),
                 ("ingest", "decode", ("frames", "control"))]
    # A port may be open to several workloads (events: fanout and backfill): a rule covering it
    # must name only workloads allowed on it.
    allowed_on: dict[tuple[str, str], set[str]] = {}
    for target, allowed, roles in protected:
        for role in roles:
            allowed_on.setdefault((target, role), set()).add(allowed)
    for target, allowed, roles in protected:
        policies = [np for np in render.of("NetworkPolicy") if matches(np["spec"]["podSelector"], pod_labels[target])]
        if not f.check(bool(policies) and all("Ingress" in np["spec"].get("policyTypes", ["Ingress"]) for np in policies),
                       f"{p} no ingress NetworkPolicy selects {target}"):
            continue
        ports = {service_ports[target][r] for r in roles}
        reached_from_allowed = set()
        for np in policies:
            for rule in np["spec"].get("ingress", []):
                rule_ports = {x.get("port") for x in rule.get("ports", [])}
                rule_ports = {service_ports[target].get(x, x) if isinstance(x, str) else x for x in rule_ports}
                covered = ports if not rule.get("ports") else ports & rule_ports
                if not covered:
                    continue
                peers = rule.get("from", [])
                covered_roles = {r for r in service_ports[target] if service_ports[target][r] in covered}
                permitted = set.intersection(*(allowed_on.get((target, r), set()) for r in covered_roles)) \
                    if covered_roles else set()
                only_permitted = bool(peers) and all(
                    set(peer) == {"podSelector"}
                    and any(matches(peer["podSelector"], pod_labels[a]) for a in permitted)
                    and not any(matches(peer["podSelector"], pod_labels[o]) for o in pod_labels if o not in permitted)
                    for peer in peers)
                f.check(only_permitted, f"{p} NetworkPolicy {np['metadata']['name']} lets more than {sorted(permitted)} reach {target} ports {sorted(covered)}")
                if only_permitted and all(matches(peer["podSelector"], pod_labels[allowed]) for peer in peers):
                    reached_from_allowed |= covered
        f.check(reached_from_allowed == ports, f"{p} {allowed} cannot reach {target} ports {sorted(ports - reached_from_allowed)}")
    for service in workloads:
        f.check(any(matches(np["spec"]["podSelector"], pod_labels[service]) for np in render.of("NetworkPolicy")),
                f"{p} no NetworkPolicy for {service}")

    # Graceful termination.
    fspec = fanout["spec"]["template"]["spec"]
    grace_var = dc.env_var_name("shutdown-grace")
    grace = duration_seconds(effective_env["fanout"].get(grace_var, flags["fanout"].get("shutdown-grace", dc.Flag("", "", "", "", "5s")).default))
    pre = sleep_seconds(fspec["containers"][0].get("lifecycle"))
    f.check(pre > 0, f"{p} fanout needs a preStop (leave the load balancer before closing clients)")
    f.check(fspec.get("terminationGracePeriodSeconds", 30) >= pre + grace + 5,
            f"{p} fanout terminationGracePeriodSeconds {fspec.get('terminationGracePeriodSeconds', 30)} < preStop {pre} + shutdown grace {grace} + 5")
    dspec = decode["spec"]["template"]["spec"]
    pre = sleep_seconds(dspec["containers"][0].get("lifecycle"))
    f.check(pre > 0, f"{p} decode needs a preStop")
    f.check(dspec.get("terminationGracePeriodSeconds", 30) >= pre + DECODE_FLUSH_SECONDS + 5,
            f"{p} decode terminationGracePeriodSeconds too short for preStop {pre} + flush {DECODE_FLUSH_SECONDS} + 5")

    # ServiceMonitor (when the operator component is included).
    monitors = render.of("ServiceMonitor")
    for sm in monitors:
        endpoints = {e.get("port") for e in sm["spec"].get("endpoints", [])}
        for service in workloads:
            ok = any(matches(sm["spec"]["selector"], svc["metadata"].get("labels", {}))
                     and matches(svc["spec"].get("selector"), pod_labels[service])
                     and any(port.get("name") in endpoints and
                             (service_ports[service].get(port.get("targetPort")) if isinstance(port.get("targetPort"), str)
                              else port.get("targetPort", port["port"])) == service_ports[service]["metrics"]
                             for port in svc["spec"]["ports"])
                     for svc in render.of("Service"))
            f.check(ok, f"{p} ServiceMonitor {sm['metadata']['name']} does not reach {service}'s metrics port")
        f.check(sm["spec"].get("jobLabel") == "app.kubernetes.io/name",
                f"{p} ServiceMonitor jobLabel must be app.kubernetes.io/name (job names of the alert rules)")
    return monitors


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", type=Path)
    args = parser.parse_args()
    kubectl = dc.which("kubectl")
    if not kubectl:
        dc.skip("kubectl is not installed (it is not a Debian package: kubectl >= 1.27 with "
                "built-in kustomize is needed to render k8s/overlays)")
    f = dc.Failures("k8s manifests")
    flags = {}
    for service in dc.SERVICES:
        flags[service], source = dc.service_flags(service, args.build_dir)
        print(f"flags of {service}: {len(flags[service])} from {source}")
    f.check(len(OVERLAYS) >= 2, f"want at least the dev and prod overlays, found {[o.name for o in OVERLAYS]}")
    any_monitor = False
    for target in [K8S / "base"] + OVERLAYS:
        rel = target.relative_to(K8S)
        out = subprocess.run([kubectl, "kustomize", str(target)], capture_output=True, text=True, timeout=120)
        if not f.check(out.returncode == 0, f"kubectl kustomize k8s/{rel} failed: {out.stderr.strip()}"):
            continue
        docs = dc.load_yaml_all(out.stdout)
        print(f"k8s/{rel}: {len(docs)} objects: " + ", ".join(sorted({d['kind'] for d in docs})))
        if target.parent.name != "overlays":
            continue  # the base is rendered only to prove it builds on its own
        monitors = check_overlay(str(rel), Render(docs), flags, f)
        if monitors:
            any_monitor = True
            f.check(len(Render(docs).of("PrometheusRule")) == 1, f"[{rel}] ServiceMonitor without the PrometheusRule")
        if target.name == "prod":
            f.check(bool(monitors), "[overlays/prod] must include the ServiceMonitor (components/prometheus-operator)")
    f.check(any_monitor, "no overlay renders a ServiceMonitor")
    return f.finish()


if __name__ == "__main__":
    sys.exit(main())
