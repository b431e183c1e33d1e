"""The remote pieces that need no ssh server: host specs, the ssh argv, the inventory, the clock
arithmetic, and the remote wrapper's promise (run here with sh: EOF on stdin ends tcpdump)."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from remote_lab import children
from dr_inspect.capturefacts import clock_disagreements
from dr_inspect.cli import main
from dr_inspect.errors import InputError
from dr_inspect.remote.agent import WRAPPER
from dr_inspect.remote.inventory import build_inventory, parse_inventory
from dr_inspect.remote.probe import best_offset, parse_probe
from dr_inspect.remote.ssh import SshHost, parse_host_spec, parse_target, ssh_argv


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.5", (None, "10.0.0.5", None)),
    ("root@10.0.0.5", ("root", "10.0.0.5", None)),
    ("ops@rs1.example.net:2222", ("ops", "rs1.example.net", 2222)),
    ("[fd00::5]:22", (None, "fd00::5", 22)),
    ("fd00::5", (None, "fd00::5", None)),
])
def test_targets_parse(text, expected):
    assert parse_target(text, "--host x=") == expected


@pytest.mark.parametrize("spec", ["rs1", "rs1=", "=10.0.0.5", "rs1=-oProxyCommand=x", "rs1=a b",
                                  "rs1=host:0", "rs1=host:99999", "rs1=@host", "../x=host",
                                  "rs1=us;er@host"])
def test_bad_host_specs_are_input_errors(spec):
    with pytest.raises(InputError):
        parse_host_spec(spec)


def test_ssh_argv_is_batch_mode_with_the_users_config_and_a_quoted_command():
    host = SshHost("rs1", "10.0.0.7", "ops", 2222, Path("/etc/farm_ssh"), ("ConnectTimeout=3",))
    argv = ssh_argv(host, ["tcpdump", "-i", "eth0", "--", "tcp and port 80"])
    assert argv[:3] == ["ssh", "-F", "/etc/farm_ssh"]
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert "BatchMode=yes" in opts
    assert opts.index("ConnectTimeout=3") < opts.index("ConnectTimeout=10")   # the user's wins
    assert not any(o.lower().startswith("stricthostkeychecking") for o in opts)
    assert argv[argv.index("-l") + 1] == "ops" and argv[argv.index("-p") + 1] == "2222"
    assert argv[-3:-1] == ["--", "10.0.0.7"] and "-T" in argv
    # the remote shell gets one string that splits back into exactly the words given
    assert shlex.split(argv[-1]) == ["tcpdump", "-i", "eth0", "--", "tcp and port 80"]


def test_inventory_file(tmp_path):
    data = {"ssh": {"config": "farm_ssh", "options": ["ServerAliveInterval=2"]},
            "capture": {"filter": "tcp or arp", "snaplen": 512, "max_mb": 20},
            "hosts": {"director": {"ssh": "root@10.0.0.5", "role": "director",
                                   "interfaces": ["eth0", "eth1"],
                                   "point_roles": {"eth0": "vip-segment"}},
                      "rs1": {"ssh": "10.0.0.7:2222", "interfaces": ["eth0"], "options": ["Port=1"]}}}
    inv = parse_inventory(data, "farm.toml", tmp_path)
    assert inv.bpf == "tcp or arp" and inv.snaplen == 512 and inv.max_mb == 20
    d, rs = inv.hosts["director"], inv.hosts["rs1"]
    assert (d.user, d.host, d.port, d.role, d.config) == ("root", "10.0.0.5", None, "director",
                                                          tmp_path / "farm_ssh")
    assert rs.port == 2222 and rs.options == ("ServerAliveInterval=2", "Port=1")
    assert [(i.point, i.role) for i in inv.interfaces] == [
        ("director-eth0", "vip-segment"), ("director-eth1", None), ("rs1-eth0", None)]


@pytest.mark.parametrize("data, message", [
    ({"hosts": {}}, r"no \[hosts\.NAME\]"),
    ({"hosts": {"rs1": {"interfaces": ["eth0"]}}}, "ssh = "),
    ({"hosts": {"rs1": {"ssh": "h", "role": "boss"}}}, "role"),
    ({"hosts": {"rs1": {"ssh": "h", "colour": 1}}}, "unknown key"),
    ({"hosts": {"rs1": {"ssh": "h", "options": ["StrictHostKeyChecking"]}}}, "Key=Value"),
    ({"capture": {"snaplen": -1}, "hosts": {"rs1": {"ssh": "h"}}}, "positive"),
])
def test_bad_inventories_name_the_problem(tmp_path, data, message):
    with pytest.raises(InputError, match=message):
        parse_inventory(data, "farm.toml", tmp_path)


def test_command_line_hosts_and_interfaces():
    inv = build_inventory(None, ["rs1=root@10.0.0.7"], ["rs1:eth0"], {"rs1-eth0": "rs-segment"},
                          ssh_options=["Port=2200"])
    assert inv.hosts["rs1"].options == ("Port=2200",)
    assert [(i.point, i.role) for i in inv.interfaces] == [("rs1-eth0", "rs-segment")]
    with pytest.raises(InputError, match="no host 'rs2'"):
        build_inventory(None, ["rs1=10.0.0.7"], ["rs2:eth0"], {})
    with pytest.raises(InputError, match="HOST-IFACE"):
        build_inventory(None, ["rs1=10.0.0.7"], ["rs1:eth0"], {"eth0": "rs-segment"})


def test_capture_cli_refuses_mixed_and_bad_remote_options():
    runner = CliRunner()
    res = runner.invoke(main, ["capture", "--host", "rs1=10.0.0.7", "--iface", "rs1:eth0",
                               "--bridge", "br_e"])
    assert res.exit_code == 2 and "local capture" in res.output
    res = runner.invoke(main, ["capture", "--host", "rs1=10.0.0.7", "--iface", "rs1:eth0",
                               "--filter", "-w /tmp/x"])
    assert res.exit_code == 2 and "starts with '-'" in res.output
    res = runner.invoke(main, ["doctor", "--host", "rs1=10.0.0.7"])
    assert res.exit_code == 2 and "--vip" in res.output


def test_clock_offset_from_the_shortest_round_trip():
    # (sent, remote clock, received): the 2nd sample has the shortest round trip
    samples = [(1000, 90_000, 5000), (10_000, 100_500, 10_400), (20_000, 130_000, 29_000)]
    assert best_offset(samples) == (100_500 - 10_200, 200)
    assert best_offset([]) is None
    assert parse_probe(["tcpdump=/usr/bin/tcpdump", "nano=1", "missing=eth9"]).missing == ["eth9"]
    assert parse_probe(["tcpdump="]).tcpdump is None


def test_clock_disagreement_beyond_the_bound_is_noted():
    measured = {"a": (5_000_000, 100_000), "b": (45_000_000, 100_000), "c": (6_000_000, 100_000)}
    # traffic: b is 40 ms after a (agrees), c is 30 ms after a (measured: 1 ms)
    notes = clock_disagreements(measured, {"a": 0, "b": 40_000_000, "c": 30_000_000}, "a", 1_000_000)
    assert len(notes) == 1 and notes[0].startswith("clock of c:") and "disagree by 29.000 ms" in notes[0]
    assert clock_disagreements(measured, {"b": 0}, "x", 1_000_000) == []


def _wrapped(*command: str) -> subprocess.Popen:
    return subprocess.Popen(["sh", "-c", WRAPPER, "agent", *command], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_wrapper_stops_the_command_when_stdin_ends():
    proc = _wrapped("sleep", "300")
    deadline = time.monotonic() + 10
    while len(children(proc.pid)) < 2 and time.monotonic() < deadline:   # sleep + watcher
        time.sleep(0.05)
    kids = children(proc.pid)
    assert len(kids) == 2
    proc.stdin.close()                      # what sshd does when the channel closes
    assert proc.wait(10) == 143             # sleep ended by SIGTERM; the wrapper passes it on
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(pid) for pid in kids)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_wrapper_exits_with_the_commands_status_when_it_ends_itself():
    proc = _wrapped("sh", "-c", "echo out; echo err >&2; exit 3")
    assert proc.wait(10) == 3               # with its stdin still open
    assert (proc.stdout.read(), proc.stderr.read()) == (b"out\n", b"err\n")
    proc.stdin.close()                      # sshd closes the channel: the watcher's cat ends


def test_manifest_reads_the_measured_clocks(tmp_path):
    from dr_inspect.captureset import load_capture_set
    from dr_inspect.capturefacts import measured_clocks

    (tmp_path / "rs1-eth0.pcap").write_bytes(b"")
    manifest = tmp_path / "manifest.toml"
    point = '[[points]]\nname = "rs1-eth0"\nfile = "rs1-eth0.pcap"\nhost = "rs1"\nssh = "root@10.0.0.7"\n'
    manifest.write_text(point + "clock_offset_ns = -1200\nclock_bound_ns = 400\n")
    assert measured_clocks(load_capture_set([tmp_path])) == {"rs1-eth0": (-1200, 400)}
    manifest.write_text(point + 'clock_offset_ns = "soon"\n')
    with pytest.raises(InputError, match="clock_offset_ns must be an integer"):
        load_capture_set([tmp_path])


def test_a_host_that_never_answers_times_out_and_leaves_nothing(tmp_path):
    """A ProxyCommand that hangs stands for a host that never answers: the probe gives up with
    one line, and the ProxyCommand (in ssh's process group) is ended with ssh."""
    from conftest import require_tool
    from dr_inspect.errors import CaptureAgentError
    from dr_inspect.remote.probe import probe_host

    require_tool("ssh", "openssh-client")
    (tmp_path / "ssh_config").write_text("")         # not the user's ~/.ssh/config
    host = SshHost("slow", "localhost", config=tmp_path / "ssh_config",
                   options=("ProxyCommand=sleep 298",))
    with pytest.raises(CaptureAgentError, match=r"^ssh localhost \(slow\): no answer \(timed out\)$"):
        probe_host(host, [], timeout=2)
    assert not subprocess.run(["pgrep", "-f", "sleep 298"], capture_output=True).stdout


def test_a_remote_command_that_never_answers_is_ssh_failure(tmp_path):
    from conftest import require_tool
    from dr_inspect.doctor.runners import ssh_runner
    from dr_inspect.doctor.snapshot import CommandFailed

    require_tool("ssh", "openssh-client")
    (tmp_path / "ssh_config").write_text("")
    host = SshHost("slow", "localhost", config=tmp_path / "ssh_config",
                   options=("ProxyCommand=sleep 297",))
    with pytest.raises(CommandFailed, match=r"^ssh localhost \(slow\): no answer from localhost within 1 s$"):
        ssh_runner(host, timeout=1)(["ip", "addr"])
    assert not subprocess.run(["pgrep", "-f", "sleep 297"], capture_output=True).stdout
