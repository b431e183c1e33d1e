"""Hostile-input timings (issue 18): decode a pcapng with many interfaces (linear in interfaces
and frames), refuse a gzip bomb (bounded time and memory). Prints one row per case.

    python -m bench.bench_inputs [--interfaces 1000,4000,20000]
"""

from __future__ import annotations

import argparse
import gzip
import resource
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dr_inspect.decode import decode_file  # noqa: E402
from dr_inspect.errors import CaptureError  # noqa: E402

FRAME = bytes.fromhex("ffffffffffff000000000000080045000028000100004006"
                      "7cce7f0000017f0000010014005000000000000000005002200091"
                      "7c0000")


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def many_interfaces(n: int) -> bytes:
    """A pcapng with n interfaces and one frame on each, in a shuffled interface order."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    out += [_block(1, struct.pack("<HHI", 1, 0, 262144)) for _ in range(n)]
    for k in range(n):
        i = (k * 7919) % n
        ts = 1_700_000_000_000_000 + k
        out.append(_block(6, struct.pack("<IIIII", i, ts >> 32, ts & 0xFFFFFFFF, len(FRAME),
                                          len(FRAME)) + FRAME))
    return b"".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--interfaces", default="1000,4000,20000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'case':<36} {'seconds':>8}  result")
        for n in (int(x) for x in args.interfaces.split(",")):
            path = Path(tmp) / f"if{n}.pcapng"
            path.write_bytes(many_interfaces(n))
            t = time.perf_counter()
            got = decode_file(path)
            took = time.perf_counter() - t
            print(f"{'pcapng, ' + str(n) + ' interfaces':<36} {took:8.2f}  "
                  f"{got.stats.frames_read} frames, {len(got.stats.interfaces)} interfaces")
        bomb = Path(tmp) / "bomb.pcap.gz"
        with gzip.open(bomb, "wb", compresslevel=9) as fh:
            fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            for _ in range(256):
                fh.write(bytes(16 << 20))         # 4 GiB of zeros, ~4 MB compressed
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        try:
            decode_file(bomb)
            result = "decoded (not refused!)"
        except CaptureError as exc:
            result = exc.reason[:60]
        took = time.perf_counter() - t
        rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) // 1024
        print(f"{'gzip bomb ' + str(bomb.stat().st_size >> 20) + ' MiB -> 4 GiB':<36} {took:8.2f}  "
              f"{result}; max RSS +{rss} MiB")


if __name__ == "__main__":
    main()
