"""``dcmon rules check|test|export|list``: validate rule files, run their unit tests, export
them, list what a server evaluates.

    dcmon rules check FILE...           like ``promtool check rules``: every problem, exit 1
    dcmon rules test TEST_FILE...       like ``promtool test rules``: SUCCESS or FAILED, exit 1
    dcmon rules export FILE... [-o OUT] pure Prometheus rules (stdout or OUT)
    dcmon rules list [--json] ...       a running server's groups and rules
                                        (``server/alerting/cli.py``, its own options)

Exit codes: 0 success, 1 a check or test failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

from server.alerting.cli import rules_main
from server.rules.errors import RuleFileError
from server.rules.export import export_text
from server.rules.load import load_file
from server.rules.model import AlertingRule
from server.rules.ruletest import run_file


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dcmon rules", description="Work with alert rule files.")
    sub = p.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate rule files")
    check.add_argument("files", nargs="+")
    test = sub.add_parser("test", help="run promtool-format rule unit tests")
    test.add_argument("files", nargs="+")
    export = sub.add_parser("export", help="write pure Prometheus rule files")
    export.add_argument("files", nargs="+")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    # Listed for --help; its options are its own parser's (``main`` hands it the rest).
    sub.add_parser("list", help="list a running server's rule groups and rules", add_help=False)
    return p


def check(files: list[str]) -> int:
    failed = False
    for path in files:
        print(f"Checking {path}")
        try:
            loaded = load_file(path)
        except RuleFileError as exc:
            failed = True
            print("  FAILED:", file=sys.stderr)
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print()
            continue
        rules = [r for g in loaded.groups for r in g.rules]
        alerts = sum(isinstance(r, AlertingRule) for r in rules)
        print(f"  SUCCESS: {len(rules)} rules found ({alerts} alerting)\n")
    return 1 if failed else 0


def test(files: list[str]) -> int:
    failed = False
    for path in files:
        print(f"Unit Testing:  {path}")
        result = run_file(path)
        if result.ok:
            print("  SUCCESS")
        else:
            failed = True
            print("  FAILED:", file=sys.stderr)
            for error in result.errors:
                print(error, file=sys.stderr)
                print()
        print()
    return 1 if failed else 0


def export(files: list[str], output: str | None) -> int:
    try:
        loaded = [load_file(path) for path in files]
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    text = export_text(loaded)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"dcmon rules export: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["list"]:
        return rules_main(argv[1:])
    args = parser().parse_args(argv)
    if args.action == "check":
        return check(args.files)
    if args.action == "test":
        return test(args.files)
    return export(args.files, args.output)
