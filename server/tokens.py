"""``dcmon token``: make an ingest token and the SHA-256 the server is configured with.

    dcmon token new            print a new random token and its hash
    dcmon token hash < FILE    print the hash of a token read from stdin

The token goes to the agent (token_file, mode 0600); only the hash goes to the server's config.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys


def new_token() -> str:
    return "dcm_" + secrets.token_urlsafe(32)


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="dcmon token", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("new", help="print a new token and its SHA-256")
    sub.add_parser("hash", help="print the SHA-256 of a token read from stdin")
    args = p.parse_args(argv)
    if args.action == "new":
        token = new_token()
        print(f"token:  {token}")
        print(f"sha256: {sha256_hex(token)}")
        return 0
    token = sys.stdin.read().strip()
    if not token:
        print("dcmon token hash: no token on stdin", file=sys.stderr)
        return 2
    print(sha256_hex(token))
    return 0
