#!/usr/bin/env python3
"""The Dockerfile and .dockerignore, checked without a Docker engine:

  - multi-stage, every stage FROM Debian 12 (bookworm);
  - the build stage installs every -dev package of scripts/install-deps.sh's service stack and
    builds jetstream-ingest, jetstream-decode, jetstream-fanout and jetstream-frames;
  - the final stage installs no -dev package and no compiler, copies the executables from the
    build stage, runs as a non-root numeric user, and EXPOSEs every service port (flag defaults);
  - when the binaries are built here: every shared library they load belongs to a Debian
    package that the final stage's package list brings in (apt-cache dependency closure), or
    to the base image's essential set;
  - .dockerignore keeps build/ and .git out of the context.

usage: check_dockerfile.py [--build-dir DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_common as dc  # noqa: E402

ROOT = dc.source_root()
TARGETS = ("jetstream-ingest", "jetstream-decode", "jetstream-fanout", "jetstream-frames")
# In debian:bookworm-slim already (priority required/essential).
BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1", "libzstd1", "zlib1g", "libbz2-1.0", "libmd0",
                 "libgcrypt20", "liblz4-1", "libcap2", "libselinux1", "libpcre2-8-0", "libsystemd0"}


def stages(text: str) -> list[dict]:
    out = []
    text = re.sub(r"\\\n", " ", text)
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    for line in text.splitlines():
        m = re.match(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            image = re.sub(r"\$\{(\w+)\}", lambda v: args.get(v.group(1), ""), m.group(1))
            out.append({"image": image, "name": m.group(2), "lines": []})
        elif out:
            out[-1]["lines"].append(line)
    return out


def apt_packages(lines: list[str]) -> set[str]:
    pkgs = set()
    for line in lines:
        for m in re.finditer(r"apt-get install ([^&;]*)", line):
            pkgs.update(w for w in m.group(1).split() if not w.startswith("-"))
    return pkgs


def install_deps_service_stack() -> set[str]:
    text = (ROOT / "scripts" / "install-deps.sh").read_text()
    m = re.search(r"# service stack\n(.*?)\n\s*#", text, re.S)
    return set(m.group(1).split()) if m else set()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", type=Path)
    args = parser.parse_args()
    f = dc.Failures("Dockerfile")
    text = (ROOT / "Dockerfile").read_text()
    st = stages(text)
    f.check(len(st) >= 2, "the Dockerfile must be multi-stage")
    for s in st:
        f.check(re.match(r"^debian:(12|bookworm)(-slim)?(@sha256:\w+)?$", s["image"]) is not None,
                f"stage {s['name']}: {s['image']} is not Debian 12")
    if len(st) < 2:
        return f.finish()
    build, final = st[0], st[-1]
    build_text = "\n".join(build["lines"])
    build_pkgs, final_pkgs = apt_packages(build["lines"]), apt_packages(final["lines"])
    missing = {p for p in install_deps_service_stack() if p.endswith("-dev")} - build_pkgs
    f.check(not missing, f"build stage lacks service-stack packages of install-deps.sh: {sorted(missing)}")
    for target in TARGETS:
        f.check(re.search(rf"--target[^\n]*\b{target}\b", build_text) is not None, f"build stage does not build {target}")
    f.check(not [p for p in final_pkgs if p.endswith("-dev") or p in ("build-essential", "cmake", "g++", "gcc", "clang")],
            f"final stage installs build packages: {sorted(final_pkgs)}")
    final_text = "\n".join(final["lines"])
    f.check(re.search(rf"COPY\s+--from={re.escape(build['name'] or '0')}\s", final_text) is not None,
            "final stage must COPY --from the build stage")
    users = re.findall(r"^USER\s+(\S+)", final_text, re.M)
    f.check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), f"final USER must be non-root, is {users}")
    f.check(bool(users) and users[-1].split(":")[0].isdigit(),
            "final USER should be numeric (Kubernetes runAsNonRoot can verify it)")
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.*)$", final_text, re.M) for p in line.split()}
    for service in dc.SERVICES:
        flags, _ = dc.service_flags(service, args.build_dir)
        for role, flag in dc.LISTEN_FLAGS[service].items():
            port = dc.port_of(flags[flag].default) if flag in flags else None
            f.check(port in exposed, f"EXPOSE lacks {service}'s {role} port {port}")

    # Runtime libraries of the real binaries are covered by the final stage's packages.
    bins = [dc.binary(args.build_dir, n) for n in ("ingest", "decode", "fanout", "backfill", "frames")] if args.build_dir else []
    bins = [b for b in bins if b]
    if bins and dc.which("dpkg") and dc.which("apt-cache"):
        needed = set()
        for b in bins:
            out = subprocess.run(["ldd", str(b)], capture_output=True, text=True, timeout=30).stdout
            for lib in re.findall(r"=>\s+(/\S+)", out):
                r = subprocess.run(["dpkg", "-S", str(Path(lib).resolve())], capture_output=True, text=True)
                if r.returncode != 0:
                    r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
                if r.returncode == 0:
                    needed.add(r.stdout.split(":")[0].strip())
                else:
                    f.fail(f"{b.name}: {lib} belongs to no Debian package")
        closure = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                                  "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"]
                                 + sorted(final_pkgs), capture_output=True, text=True, timeout=120)
        if closure.returncode == 0:
            provided = {l.strip() for l in closure.stdout.splitlines() if l and not l.startswith(" ")}
            provided |= {m.group(1) for m in re.finditer(r"Depends: <?([^\s>]+)", closure.stdout)}
            provided = {p.split(":")[0] for p in provided}
            lacking = needed - provided - BASE_PACKAGES
            f.check(not lacking, f"the final stage does not bring in {sorted(lacking)} (needed by {[b.name for b in bins]})")
            print(f"runtime libraries: {len(needed)} Debian packages needed, all in the final stage's closure"
                  if not lacking else "")
        else:
            print("note: apt-cache depends failed (no package lists?); runtime library closure not checked")
    else:
        print("note: binaries not built (or no dpkg/apt-cache): runtime library check skipped")

    ignore = (ROOT / ".dockerignore").read_text().split() if (ROOT / ".dockerignore").is_file() else []
    f.check(any(p.strip("/") == "build" for p in ignore), ".dockerignore must exclude build/")
    f.check(".git" in ignore, ".dockerignore must exclude .git")
    return f.finish()


if __name__ == "__main__":
    sys.exit(main())
