"""Traffic generator: many concurrent HTTP connections to VIP:PORT, counting which server answered.

Run in the client namespace (the lab does it for you):
    ip netns exec dri-client python -m dr_inspect.lab.loadgen --vip 192.168.7.33 --port 8000 \
        --requests 100 --concurrency 10 --payload 0,1000,20000 --json
Prints one JSON object: {"ok", "failed", "per_server": {rs1: n}, "errors": {kind: n}}.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import sys
from collections import Counter


async def one_request(vip: str, port: int, payload: int, reply_size: int, timeout: float) -> str:
    """Return the name of the server that answered; raise on failure."""
    async def talk() -> str:
        reader, writer = await asyncio.open_connection(vip, port)
        try:
            path = f"/?size={reply_size}" if reply_size else "/"
            if payload:
                head = (f"POST {path} HTTP/1.0\r\nHost: {vip}:{port}\r\n"
                        f"Content-Length: {payload}\r\n\r\n").encode()
                writer.write(head + b"x" * payload)
            else:
                writer.write(f"GET {path} HTTP/1.0\r\nHost: {vip}:{port}\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        head, _, _ = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines or " 200 " not in lines[0] + " ":
            raise ValueError("bad-response")
        for line in lines[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "x-served-by":
                return value.strip()
        return "unknown"
    return await asyncio.wait_for(talk(), timeout)


async def run(vip: str, port: int, requests: int, concurrency: int, payloads: list[int],
              reply_size: int, timeout: float) -> dict:
    sem = asyncio.Semaphore(max(1, concurrency))
    per_server: Counter[str] = Counter()
    errors: Counter[str] = Counter()

    async def worker(i: int) -> None:
        async with sem:
            try:
                per_server[await one_request(vip, port, payloads[i % len(payloads)], reply_size, timeout)] += 1
            except asyncio.TimeoutError:
                errors["timeout"] += 1
            except ConnectionRefusedError:
                errors["refused"] += 1
            except ConnectionResetError:
                errors["reset"] += 1
            except OSError as exc:
                errors[errno.errorcode.get(exc.errno or 0, type(exc).__name__).lower()] += 1
            except ValueError as exc:
                errors[str(exc)] += 1

    await asyncio.gather(*(worker(i) for i in range(requests)))
    ok = sum(per_server.values())
    return {"ok": ok, "failed": requests - ok, "per_server": dict(sorted(per_server.items())),
            "errors": dict(sorted(errors.items()))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--payload", default="0", help="comma-separated request body sizes (0: GET)")
    ap.add_argument("--reply-size", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    payloads = [int(x) for x in str(args.payload).split(",") if x.strip()] or [0]
    result = asyncio.run(run(args.vip, args.port, args.requests, args.concurrency, payloads,
                             args.reply_size, args.timeout))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"ok {result['ok']} failed {result['failed']} per server {result['per_server']} "
              f"errors {result['errors']}")
    sys.exit(0)


if __name__ == "__main__":
    main()
