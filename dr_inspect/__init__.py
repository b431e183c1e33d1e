"""dr-inspect: live traffic analyser and verifier for LVS Direct Routing.

The library's public interface is what __all__ names:

    report = dr_inspect.verify(["captures/seed-ipvs"], dr_inspect.VerifyOptions(vips=("192.168.7.33:8000",)))
    report.verdict, report.exit_code, report.rules           # dr_inspect.model.VerifyReport
    capture = dr_inspect.decode_file("br_e.pcap")            # DecodedCapture(packets, stats)

Every other module is internal to dr-inspect and may change without notice (docs/ARCHITECTURE.md
describes the layout).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from typing import TYPE_CHECKING

from dr_inspect.errors import DrInspectError
from dr_inspect.model import VerifyReport
from dr_inspect.options import VerifyOptions

if TYPE_CHECKING:
    from dr_inspect.decode.stats import DecodedCapture

__version__ = "0.1.0"

__all__ = ["DrInspectError", "VerifyOptions", "VerifyReport", "__version__", "decode_file",
           "verify"]


def verify(paths: Sequence[str | PathLike[str]], options: VerifyOptions | None = None, *,
           progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Verify the LVS-DR invariants on a capture set (a directory with manifest.toml, or
    capture files, one point each) and return the report.

    progress(stage) is called as each stage starts ("decoding <point>", "correlating", "rules").
    Raises a DrInspectError subclass (one-line message) for bad input."""
    # imported here: `import dr_inspect` (the CLI, the lab) does not load pandas
    from dr_inspect.analysis.paths import verify_paths
    return verify_paths(list(paths), options or VerifyOptions(), progress=progress)


def decode_file(path: str | PathLike[str], *, point: str | None = None) -> DecodedCapture:
    """Decode one capture file (pcap or pcapng, optionally gzip) into the packets table.

    Raises CaptureError when the file cannot be read from the start; a file broken mid-way gives
    the frames before the break and stats.error."""
    from dr_inspect.decode.api import decode_file as decode
    return decode(path, point=point)
