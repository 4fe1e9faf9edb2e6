#!/usr/bin/env python3
"""The flag tables of README.md's "Operating" section, generated from each service's `--help`.

    python3 tests/deploy/readme_flags.py --write --build-dir build/ci   # regenerate the tables
    python3 tests/deploy/readme_flags.py --check --build-dir build/ci   # fail if they differ

A table sits between `<!-- flags:SERVICE:begin -->` and `<!-- flags:SERVICE:end -->`. --check
skips (exit 77) when a binary is not built: the tables are only ever made from real --help.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_common as dc  # noqa: E402

README = dc.source_root() / "README.md"


def table(flags: dict[str, dc.Flag]) -> str:
    rows = ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for fl in flags.values():
        default = f"`{fl.default}`" if fl.default != "" else "(empty)"
        meaning = fl.help.replace("|", "\\|")
        kind = "" if fl.kind == "bool" else f" {fl.kind}"
        rows.append(f"| `--{fl.name}`{kind} | `{fl.env}` | {default} | {meaning} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", type=Path, required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    new = text
    for service in dc.SERVICES:
        path = dc.binary(args.build_dir.resolve(), service)
        if path is None:
            if args.check:
                dc.skip(f"{args.build_dir / dc.BINARY_PATHS[service]} is not built; the tables come from --help")
            print(f"{service}: not built, table left as it is")
            continue
        flags = dc.parse_help(dc.help_text(path))
        pattern = re.compile(rf"(<!-- flags:{service}:begin -->\n)(?:.*?\n)?(<!-- flags:{service}:end -->)", re.S)
        if not pattern.search(new):
            print(f"README.md has no <!-- flags:{service}:begin/end --> markers")
            return 1
        new = pattern.sub(lambda m: m.group(1) + table(flags) + "\n" + m.group(2), new)
    if args.write:
        README.write_text(new)
        print("README.md flag tables written")
        return 0
    if new != text:
        print("README.md flag tables differ from --help: run python3 tests/deploy/readme_flags.py --write --build-dir <build dir>")
        return 1
    print("README.md flag tables match --help of the services")
    return 0


if __name__ == "__main__":
    sys.exit(main())
