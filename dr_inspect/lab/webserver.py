"""The real servers' HTTP service: Python's http.server (threading), with a page naming the server.

Run inside a real server's namespace:
    python -m dr_inspect.lab.webserver --name rs1 --port 8000
GET /            -> "rs1 192.168.88.20\n" (header X-Served-By: rs1)
GET /?size=N     -> the same line padded to N bytes (for larger replies)
POST / (body)    -> the same line, after reading the whole body (for client payload sizes)
"""

from __future__ import annotations

import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_REPLY = 16 * 1024 * 1024


def make_handler(name: str, label: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dr-inspect-lab"
        protocol_version = "HTTP/1.0"

        def _reply(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            try:
                size = min(int(query.get("size", ["0"])[0]), MAX_REPLY)
            except ValueError:
                size = 0
            body = f"{label}\n".encode()
            if size > len(body):
                body = body[:-1] + b"." * (size - len(body)) + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Served-By", name)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            self._reply()

        def do_POST(self) -> None:  # noqa: N802
            remaining = int(self.headers.get("Content-Length", "0") or 0)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            self._reply()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write(f"{name} {self.client_address[0]}:{self.client_address[1]} {format % args}\n")

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args(argv)
    ThreadingHTTPServer.daemon_threads = True
    # socketserver's default listen backlog is 5: many concurrent clients would overflow the
    # accept queue and spend seconds in SYN retransmits
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer((args.bind, args.port), make_handler(args.name, args.label or args.name))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
