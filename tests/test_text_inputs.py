"""Text inputs (manifest, expected.toml, rule files, topology files, snapshots): regular files
only, size-capped, UTF-8, not absurdly nested, each problem one line naming the file; duplicate
real-server names refused; a killed capture's placeholder manifest still gives its pcaps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dr_inspect.captureset import PLACEHOLDER_HEAD, load_capture_set, read_expected
from dr_inspect.cli import main
from dr_inspect.errors import DrInspectError, InputError, TopologyError
from dr_inspect.textinput import MAX_TEXT_BYTES, parse_json, parse_toml, read_text
from dr_inspect.topology.pins import manifest_rs_names, merge_pins, pins_from_dict
from test_cli_verify import write_dr_set


@pytest.fixture(scope="module")
def dr_set(tmp_path_factory) -> Path:
    return write_dr_set(tmp_path_factory.mktemp("text") / "set")


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dr-inspect: error:"), result.output
    assert fragment in lines[0], lines[0]


# -- textinput --------------------------------------------------------------------------------

def test_fifo_device_directory_and_huge_files_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        read_text(fifo, "rule file")          # returns at once: no writer needed
    with pytest.raises(InputError, match="device"):
        read_text("/dev/zero", "rule file")
    with pytest.raises(InputError, match="directory"):
        read_text(tmp_path, "rule file")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_TEXT_BYTES + 1))
    with pytest.raises(InputError, match="larger than"):
        read_text(big, "rule file")
    latin = tmp_path / "latin.toml"
    latin.write_bytes("description = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_text(latin, "manifest")


@pytest.mark.parametrize("depth", [40, 5000, 200_000])
def test_deep_nesting_is_one_error(depth):
    with pytest.raises(InputError, match="nested"):
        parse_toml("x = " + "[" * depth + "]" * depth, "f.toml")
    with pytest.raises(InputError, match="nested"):
        parse_toml("x = " + "{a = " * depth + "1" + "}" * depth, "f.toml")
    with pytest.raises(InputError, match="nested"):
        parse_json("[" * depth + "]" * depth, "f.json")


# -- every command, every text input --------------------------------------------------------------

BAD_TEXTS = {
    "nested": "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "latin1": None,     # bytes below
    "fifo": None,
    "device": None,
}


def _bad_file(tmp_path: Path, kind: str, name: str) -> Path:
    if kind == "device":
        return Path("/dev/zero")
    path = tmp_path / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "latin1":
        path.write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    else:
        path.write_text(BAD_TEXTS[kind])
    return path


@pytest.mark.parametrize("kind", ["nested", "latin1", "fifo", "device"])
@pytest.mark.parametrize("option", ["--rules", "--topology"])
def test_verify_rule_and_topology_files(tmp_path, dr_set, kind, option):
    bad = _bad_file(tmp_path, kind, "in.toml")
    one_line_error(CliRunner().invoke(main, ["verify", "-q", str(dr_set), option, str(bad)]),
                   str(bad))


@pytest.mark.parametrize("kind", ["nested", "latin1", "fifo"])
def test_manifest_expected_and_snapshot(tmp_path, dr_set, kind):
    for name in ("manifest.toml", "expected.toml"):
        folder = tmp_path / f"{kind}-{name}"
        shutil.copytree(dr_set, folder)
        (folder / name).unlink(missing_ok=True)
        _bad_file(folder, kind, name)
        one_line_error(CliRunner().invoke(main, ["verify", "-q", str(folder)]), name)
    folder = tmp_path / f"{kind}-snapshot"
    shutil.copytree(dr_set, folder)
    with open(folder / "manifest.toml", "a") as fh:
        fh.write('\n[snapshots]\nrs1 = "rs1.json"\n')
    _bad_file(folder, kind, "rs1.json")
    one_line_error(CliRunner().invoke(main, ["doctor", str(folder), "--vip", "192.168.7.33:8000"]),
                   "rs1.json")


@pytest.mark.parametrize("text, fragment", [
    ("fail = 'DR001'\n", "fail must be an array"),
    ("fail = [1, 2]\n", "fail must be an array of rule ids"),
    ("description = 3\n", "description must be a string"),
    ("other = 1\n", "unknown key"),
])
def test_expected_toml_with_wrong_types(tmp_path, text, fragment):
    (tmp_path / "expected.toml").write_text(text)
    with pytest.raises(InputError, match=fragment):
        read_expected(tmp_path)


# -- real-server names ------------------------------------------------------------------------------

def test_duplicate_real_server_names_are_refused():
    servers = [{"name": "rs1", "rip": "10.0.0.11"}, {"name": "rs1", "rip": "10.0.0.12"}]
    with pytest.raises(TopologyError, match="'rs1' is given to 10.0.0.11 and 10.0.0.12"):
        pins_from_dict({"real_servers": servers}, "t.toml")
    with pytest.raises(TopologyError, match="each real server needs its own name"):
        pins_from_dict({"real_servers": [{"name": "a"}, {"name": "a"}]}, "t.toml")
    with pytest.raises(TopologyError, match="manifest real_servers"):
        manifest_rs_names(servers)
    pins = pins_from_dict({"real_servers": [{"name": "rs1", "rip": "10.0.0.11"}]}, "t.toml")
    with pytest.raises(TopologyError, match="'rs1'"):
        merge_pins(pins, rs_names_by_rip={"10.0.0.12": "rs1"})
    # one server named twice the same way is fine
    assert manifest_rs_names([{"name": "rs1", "rip": "10.0.0.11"}] * 2) == {"10.0.0.11": "rs1"}


def test_real_servers_must_be_a_list_of_bounded_length():
    with pytest.raises(TopologyError, match="must be"):
        pins_from_dict({"real_servers": "rs1"}, "t.toml")
    with pytest.raises(TopologyError, match="at most"):
        pins_from_dict({"real_servers": [{}] * 5000}, "t.toml")


# -- recovery after SIGKILL ---------------------------------------------------------------------------

def test_placeholder_manifest_reads_the_capture_files(tmp_path, dr_set):
    folder = tmp_path / "killed"
    shutil.copytree(dr_set, folder)
    (folder / "expected.toml").unlink(missing_ok=True)
    # what capture/watch/demo leave when SIGKILLed: the reserved manifest, never rewritten
    (folder / "manifest.toml").write_text(PLACEHOLDER_HEAD + "\n" + "#" * 200 + "\n")
    cs = load_capture_set([folder])
    assert sorted(p.name for p in cs.points) == ["br_e", "br_lvs"]
    assert "interrupted" in cs.capture["description"]
    result = CliRunner().invoke(main, ["verify", "-q", str(folder)])
    assert result.exit_code == 0 and "no frames could be read" not in result.output
    empty = tmp_path / "killed-early"
    empty.mkdir()
    (empty / "manifest.toml").write_text(PLACEHOLDER_HEAD + "\n")
    with pytest.raises(DrInspectError, match="interrupted capture"):
        load_capture_set([empty])


def test_written_manifests_read_back_whatever_the_text(tmp_path):
    """capture writes the manifest: a DEL in a description or a non-ASCII host name must not
    make it unreadable TOML."""
    from dr_inspect.live.manifest import render_manifest
    (tmp_path / "br_e.pcap").write_bytes(b"")
    text = render_manifest({"description": "a\x7fb \u00e9\n\"q\"", "host": "h\u00f4te"},
                           [{"name": "br_e", "file": "br_e.pcap", "host": "\u00e9t\u00e9"}], {})
    (tmp_path / "manifest.toml").write_text(text)
    cs = load_capture_set([tmp_path])
    assert cs.capture["description"] == "a\x7fb \u00e9\n\"q\"" and cs.points[0].host == "\u00e9t\u00e9"
