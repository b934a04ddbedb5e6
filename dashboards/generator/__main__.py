"""``python -m dashboards.generator [--check]``: write the dashboards' JSON files, or check them.

Stage: dashboards (build time). Input: the specs (``dashboards.generator.DASHBOARDS``); output:
``dashboards/dcmon-<name>.json`` written, or with ``--check`` exit status 1 and the names of
the files that differ from what the specs build (none written).
"""

from __future__ import annotations

import argparse
import sys

from dashboards.generator import FOLDER, render


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.generator")
    parser.add_argument("--check", action="store_true", help="write nothing; fail on a difference")
    args = parser.parse_args(argv)
    stale = [
        name
        for name, text in render().items()
        if not (FOLDER / name).exists() or (FOLDER / name).read_text(encoding="utf-8") != text
    ]
    if args.check:
        for name in stale:
            sys.stderr.write(
                f"{FOLDER / name} differs from its spec; run python -m dashboards.generator\n"
            )
        return 1 if stale else 0
    for name, text in render().items():
        (FOLDER / name).write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {len(render())} dashboards to {FOLDER} ({len(stale)} changed)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
