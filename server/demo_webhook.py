"""The demo's webhook receiver: prints each notification dcmon sends, and keeps them in a file.

``dcmon demo --scenario faults`` configures a direct webhook receiver (Alertmanager's v4
payload, ``server/notify/webhook.py``) pointed here, so the person watching sees every alert
arrive and resolve in the terminal, as a chat channel or pager would get it. Each payload is
appended, one JSON object per line, to the log file (``webhook.jsonl`` in the demo's data
directory). Listens on 127.0.0.1 only; answers 200 to a JSON POST and 400 to anything else.

Run as its own process (the demo's supervisor starts it like the server and the agents):
``python -m server.demo_webhook --port PORT --log FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 4 * 1024 * 1024


def summarise(payload: dict[str, Any]) -> list[str]:
    """Returns: one line per alert of a webhook payload, e.g.
    ``FIRING   GpuXidFatal  node-1 GPU 3: GPU 3 on node-1 reported fatal XID 79``."""
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        where = labels.get("instance") or labels.get("Hostname", "")
        if "gpu" in labels:
            where = f"{where} GPU {labels['gpu']}"
        summary = alert.get("annotations", {}).get("summary", "")
        status = str(alert.get("status", "")).upper()
        lines.append(f"{status:<8} {labels.get('alertname', '?')}  {where}: {summary}")
    return lines


def make_handler(log: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                self.send_error(400, "a JSON body is required")
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "the body is not JSON")
                return
            if not isinstance(payload, dict):
                self.send_error(400, "the body is not a JSON object")
                return
            with log.open("a", encoding="utf-8") as out:
                out.write(json.dumps(payload, sort_keys=True) + "\n")
            for line in summarise(payload):
                with contextlib.suppress(OSError):
                    print(f"webhook: {line}", flush=True)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per alert is printed instead of an access log

    return Handler


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m server.demo_webhook")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.log))
    except OSError as exc:
        print(f"demo webhook: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    with httpd, contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
