"""Ladders as PNG pictures (issue 7): the SVG ladder rendered by headless Chromium, through the
library (dr_inspect.report.png) and through `dr-inspect ladder --png`."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import require_tool
from dr_inspect.cli import main
from dr_inspect.errors import InputError, MissingToolError
from dr_inspect.report import render_ladder_svg
from dr_inspect.report.png import find_chromium, svg_size, svg_to_png
from test_cli_verify import write_dr_set
from test_report import sample_ladder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must come first after the signature."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def test_svg_size_reads_the_root_element():
    assert svg_size('<?xml version="1.0"?><svg xmlns="x" width="812.4" height="300">'
                    '<rect width="5" height="6"/></svg>') == (813, 300)
    assert svg_size("<svg width='20px' height='10px'></svg>") == (20, 10)
    with pytest.raises(InputError, match="no height"):
        svg_size('<svg width="10" height="50%"></svg>')
    with pytest.raises(InputError, match="no <svg>"):
        svg_size("<html></html>")


def test_ladder_svg_to_png_has_the_svg_pixel_size(tmp_path):
    chromium = require_tool("chromium", "chromium")
    svg = render_ladder_svg(sample_ladder(3))
    out = tmp_path / "ladder.png"
    size = svg_to_png(svg, out, chromium=chromium)
    assert size == svg_size(svg)
    assert png_size(out.read_bytes()) == size
    assert size[0] > 600 and size[1] > 100       # a real ladder, not a blank default window


def test_ladder_cli_png(tmp_path):
    require_tool("chromium", "chromium")
    capture_set = write_dr_set(tmp_path / "set")
    png, svg = tmp_path / "flow1.png", tmp_path / "flow1.svg"
    result = CliRunner().invoke(main, ["ladder", "-q", "--flow", "1", "--svg", str(svg),
                                       "--png", str(png), str(capture_set)])
    assert result.exit_code == 0, result.output
    size = svg_size(svg.read_text())
    assert f"PNG written to {png} ({size[0]}x{size[1]})" in result.output
    assert png_size(png.read_bytes()) == size


def test_missing_chromium_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match="apt-get install chromium"):
        find_chromium()
    capture_set = write_dr_set(tmp_path / "set")
    result = CliRunner().invoke(main, ["ladder", "-q", "--flow", "1", "--png",
                                       str(tmp_path / "x.png"), str(capture_set)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "dr-inspect: error: chromium not found (needed to render PNG pictures): "
        "install it with 'apt-get install chromium'"]
    assert not (tmp_path / "x.png").exists()


def test_png_into_a_missing_folder_is_one_line(tmp_path):
    out = tmp_path / "no" / "such" / "x.png"
    with pytest.raises(InputError, match="no such directory"):
        svg_to_png('<svg width="10" height="10"></svg>', out, chromium="/bin/false")
    assert not Path(out).exists()


def test_a_browser_that_fails_is_one_line(tmp_path):
    from dr_inspect.report.png import RenderError
    with pytest.raises(RenderError, match=r"could not render the PNG \(exit 1\)"):
        svg_to_png('<svg width="10" height="10"></svg>', tmp_path / "x.png", chromium="/bin/false")
    assert not (tmp_path / "x.png").exists()


def test_a_picture_of_the_wrong_size_is_refused(tmp_path):
    """A browser that ignores --window-size must not pass for a correct PNG."""
    from dr_inspect.report.png import RenderError
    fake = tmp_path / "fake-chromium"
    # writes a valid 1x1 PNG header to the --screenshot path, whatever size was asked for
    fake.write_text("#!/bin/sh\nfor a; do case $a in --screenshot=*) "
                    "printf '\\211PNG\\r\\n\\032\\n\\000\\000\\000\\rIHDR\\000\\000\\000\\001\\000\\000\\000\\001'"
                    " > \"${a#--screenshot=}\";; esac; done\n")
    fake.chmod(0o755)
    with pytest.raises(RenderError, match="made a 1x1 picture, not 10x20"):
        svg_to_png('<svg width="10" height="20"></svg>', tmp_path / "x.png", chromium=str(fake))
    assert not (tmp_path / "x.png").exists()
