"""SVG to PNG with headless Chromium (the I/O edge of `dr-inspect ladder --png`).

Chromium opens the SVG file itself (no HTML wrapper, so no page margin) in a window sized from
the SVG's width and height, and screenshots it; every feature that could reach the network or
touch a user profile is switched off, and the profile is a temporary folder removed afterwards.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dr_inspect.errors import DrInspectError, InputError, MissingToolError

CHROMIUM_PACKAGE = "chromium"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1")
_ROOT = re.compile(r"<svg\b[^>]*>", re.S)
_LENGTH = r'\s{name}\s*=\s*["\']\s*([0-9]+(?:\.[0-9]*)?)\s*(?:px)?\s*["\']'


class RenderError(DrInspectError):
    """Chromium ran but did not produce the picture."""


def svg_size(svg: str) -> tuple[int, int]:
    """(width, height) in whole pixels from the root <svg> element's width/height attributes."""
    root = _ROOT.search(svg)
    if root is None:
        raise InputError("SVG: no <svg> element")
    size = []
    for name in ("width", "height"):
        found = re.search(_LENGTH.format(name=name), root.group(0))
        if found is None:
            raise InputError(f"SVG: the <svg> element has no {name} in pixels")
        size.append(max(1, math.ceil(float(found.group(1)))))
    return size[0], size[1]


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when `data` is not a PNG."""
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise MissingToolError("chromium", CHROMIUM_PACKAGE, "needed to render PNG pictures")


def svg_to_png(svg: str, png: Path, *, chromium: str | None = None,
               timeout_s: float = 120.0) -> tuple[int, int]:
    """Write `svg` as a PNG picture of the SVG's own pixel size to `png`; returns that size."""
    width, height = svg_size(svg)
    png = Path(png)
    if not png.parent.is_dir():
        raise InputError(f"{png}: cannot write: no such directory {png.parent}")
    browser = chromium or find_chromium()
    with tempfile.TemporaryDirectory(prefix="dr-inspect-png-") as tmp:
        page = Path(tmp) / "picture.svg"
        page.write_text(svg, encoding="utf-8")
        shot = Path(tmp) / "shot.png"
        argv = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--window-size={width},{height}", f"--screenshot={shot}", page.as_uri()]
        try:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                 check=False, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise MissingToolError("chromium", CHROMIUM_PACKAGE, "needed to render PNG pictures") from None
        except subprocess.TimeoutExpired:
            raise RenderError(f"chromium did not finish the PNG within {timeout_s:.0f} s") from None
        if run.returncode != 0 or not shot.is_file():
            last = (run.stderr.strip().splitlines() or ["no message"])[-1]
            raise RenderError(f"chromium could not render the PNG (exit {run.returncode}): {last}")
        got = png_size(shot.read_bytes()[:24])
        if got != (width, height):
            raise RenderError(f"chromium made a {got[0]}x{got[1]} picture, not {width}x{height}"
                              if got else "chromium wrote something that is not a PNG")
        try:
            shutil.copyfile(shot, png)
        except OSError as exc:
            raise InputError(f"{png}: cannot write: {exc.strerror or exc}") from None
    return width, height
