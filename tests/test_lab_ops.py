"""Lab usability: faults on a chosen real server (NAME@rsN), faults that would mask each other
refused, a new demo folder per run (pure), and on a real lab (root, prefixes t17a and t17v):
`lab exec` in a namespace host and in the IPVS director VM, `lab status` naming its files,
`--fault NAME@rs2` applied to rs2, and `lab demo` twice in one folder."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest

from conftest import ROOT, require_root_netns, require_tool, running_lab
from dr_inspect.errors import LabError
from dr_inspect.lab.demo import new_demo_dir
from dr_inspect.lab.faults import check_faults, describe_faults, fault_effects


def test_fault_target_names_the_real_server():
    fx = fault_effects(["rs-answers-arp@rs2"], client_ip="192.168.7.2", vip="192.168.7.33",
                       dip="192.168.88.10")
    assert fx.rs == "rs2" and fx.rs_sysctl["net.ipv4.conf.all.arp_ignore"] == 0
    assert fault_effects(["port-mismatch"], client_ip="1.1.1.1", vip="2.2.2.2", dip="3.3.3.3").rs == "rs1"
    assert "rs2 has arp_ignore=0" in describe_faults(["rs-answers-arp@rs2"])
    check_faults(["rs-answers-arp@rs2", "port-mismatch"], "nft", real_servers=2)


@pytest.mark.parametrize("faults, message", [
    (["rs-answers-arp@rs3"], "'rs3' is not a real server of the lab (rs1..rs2)"),
    (["rs-answers-arp@web"], "is not a real server"),
    (["stale-arp@rs2"], "acts on the client or the director"),
    (["rs-answers-arp@rs1", "port-mismatch@rs2"], "several real servers (rs1, rs2)"),
    (["rs-no-vip", "port-mismatch"], "rs-no-vip and port-mismatch mask each other"),
    (["stale-arp", "rs-answers-arp"], "stale-arp and rs-answers-arp mask each other"),
    (["rs-rp-filter", "reply-via-director"], "mask each other"),
])
def test_bad_fault_combinations_are_refused(faults, message):
    with pytest.raises(LabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_faults(faults, "nft", real_servers=2)


def test_independent_faults_combine():
    check_faults(["rs-answers-arp", "rs-arp-announce", "port-mismatch"], "nft", real_servers=1)


def test_new_demo_dir_per_run(tmp_path):
    now = datetime(2026, 12, 3, 14, 5, 6)
    first = new_demo_dir(tmp_path, now)
    assert first.name == "lab-demo-20261203-140506"
    first.mkdir()
    assert new_demo_dir(tmp_path, now).name == "lab-demo-20261203-140506-2"


def _cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dr_inspect", *args], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=600)


@pytest.mark.lab
def test_exec_status_and_fault_on_rs2():
    with running_lab("t17a", director="nft", real_servers=2,
                     faults=("rs-answers-arp@rs2",)) as state:
        rs2 = _cli("lab", "exec", "--prefix", "t17a", "rs2", "sysctl", "-n",
                   "net.ipv4.conf.all.arp_ignore")
        assert rs2.returncode == 0 and rs2.stdout.strip() == "0", rs2
        rs1 = _cli("lab", "exec", "--prefix", "t17a", "rs1", "sysctl", "-n",
                   "net.ipv4.conf.all.arp_ignore")
        assert rs1.stdout.strip() == "1"
        failed = _cli("lab", "exec", "--prefix", "t17a", "client", "sh", "-c", "echo out; exit 3")
        assert failed.returncode == 3 and failed.stdout == "out\n"
        unknown = _cli("lab", "exec", "--prefix", "t17a", "rs9", "true")
        assert unknown.returncode == 2 and "no host 'rs9'" in unknown.stderr
        status = _cli("lab", "status", "--prefix", "t17a")
        assert f"work folder: {state.workdir}" in status.stdout


@pytest.mark.lab
def test_exec_in_the_ipvs_director_vm():
    from dr_inspect.lab.build import ipvs_in_kernel
    require_root_netns()
    if not ipvs_in_kernel():
        require_tool("qemu-system-x86_64", "qemu-system-x86")
    with running_lab("t17v", director="ipvs", real_servers=2) as state:
        out = _cli("lab", "exec", "--prefix", "t17v", "director", "ipvsadm", "-Ln")
        assert out.returncode == 0, out
        assert f"TCP  {state.vip}:{state.port} rr" in out.stdout
        assert out.stdout.count("Route") == 2                 # both real servers, DR method
        status = _cli("lab", "status", "--prefix", "t17v")
        if state.vm:
            assert f"director console log: {state.vm['console_log']}" in status.stdout


@pytest.mark.lab
def test_demo_twice_in_one_folder(tmp_path):
    require_root_netns()
    require_tool("tcpdump", "tcpdump")
    require_tool("nft", "nftables")
    runs = [_cli("lab", "demo", "--prefix", "t17d", "--director", "nft", "--requests", "2",
                 "--no-verify", cwd=tmp_path) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all(f.startswith("lab-demo-") for f in folders)
    assert all((tmp_path / f / "manifest.toml").is_file() for f in folders)
