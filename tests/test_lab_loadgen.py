"""The lab's HTTP server and load generator, on loopback (no namespaces needed)."""

from __future__ import annotations

import asyncio
import threading
from http.server import ThreadingHTTPServer

import pytest

from dr_inspect.lab.loadgen import run
from dr_inspect.lab.webserver import make_handler


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler("rs7", "rs7 192.168.88.26"))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_loadgen_counts_answers_per_server_with_payloads(server):
    result = asyncio.run(run("127.0.0.1", server, requests=12, concurrency=4, payloads=[0, 5000, 200000],
                             reply_size=3000, timeout=10))
    assert result == {"ok": 12, "failed": 0, "per_server": {"rs7": 12}, "errors": {}}


def test_loadgen_reports_refused_connections(server):
    import socket
    with socket.socket() as s:                # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    result = asyncio.run(run("127.0.0.1", free, requests=3, concurrency=3, payloads=[0], reply_size=0, timeout=5))
    assert result["ok"] == 0 and result["failed"] == 3 and result["errors"] == {"refused": 3}


def test_webserver_pads_the_page_to_the_requested_size(server):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{server}/?size=1000", timeout=5) as reply:
        body = reply.read()
        assert reply.headers["X-Served-By"] == "rs7"
    assert len(body) == 1000 and body.startswith(b"rs7 192.168.88.26")
