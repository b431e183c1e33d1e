"""doctor over ssh against sshd in the lab's namespaces: the same checks and results as doctor run
in the namespace itself; a remote capture's snapshots let verify join host causes as in the lab;
an unreachable host is one clear error. Lab prefix "rmtd" (ours only)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from remote_lab import cli, ssh_farm, stop, wait_capturing, wait_clean
from dr_inspect.analysis.paths import verify_paths
from dr_inspect.doctor.run import doctor_live
from dr_inspect.doctor.runners import runner_for
from dr_inspect.doctor.snapshot import take_snapshot
from dr_inspect.remote.ssh import SshHost

pytestmark = pytest.mark.lab
PREFIX = "rmtd"
FAULT = "rs-answers-arp"            # rs1: arp_ignore=0, DR005 fails, HC002 explains it


@pytest.fixture(scope="module")
def farm():
    with ssh_farm(PREFIX, faults=(FAULT,)) as (state, lab):
        yield state, lab


def _doctor(lab, *args: str) -> tuple[int, dict]:
    proc = cli("doctor", "--vip", "192.168.7.33:8000", "--ssh-config", str(lab.config),
               "--format", "json", *args)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode in (0, 1), err
    return proc.returncode, json.loads(out)


def _checks(host_report: dict) -> dict[tuple[str, str], str]:
    return {(c["id"], c["subject"]): c["status"] for c in host_report["checks"]}


def test_snapshot_over_ssh_reads_what_the_namespace_shows(farm):
    state, lab = farm
    local = take_snapshot(state.hosts["rs1"].netns, host="rs1")
    remote = take_snapshot(runner=runner_for(host=SshHost("rs1", lab.alias("rs1"), config=lab.config)),
                           host="rs1")
    for item in ("addr", "route4", "sysctl", "listeners"):
        assert remote[item] == local[item], item
    assert remote["sources"]["addr"] == "ip -j addr"
    assert remote["keepalived"] is None          # none runs in the lab


def test_remote_doctor_finds_what_the_local_doctor_finds(farm):
    state, lab = farm
    rc, report = _doctor(lab, "--host", f"director={lab.alias('director')}",
                         "--host", f"rs1={lab.alias('rs1')}")
    assert rc == 1                                              # the fault fails a check
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts["director"]["role"] == "director" and hosts["rs1"]["role"] == "realserver"
    assert _checks(hosts["rs1"])[("HC002", "eth14")] == "fail"
    dip = state.hosts["director"].interfaces["eth8"]["ip"]
    local = doctor_live("realserver", "192.168.7.33:8000", state.hosts["rs1"].netns, director_ips=(dip,))
    local_checks = {(c.id, c.subject): c.status for c in local.checks}
    remote_checks = {k: v for k, v in _checks(hosts["rs1"]).items() if k[1] != "mgmt0"}
    assert remote_checks == {k: v for k, v in local_checks.items() if k[1] != "mgmt0"}


def test_inventory_roles_and_an_unreachable_host(farm, tmp_path):
    state, lab = farm
    inventory = tmp_path / "farm.toml"
    inventory.write_text(f'[ssh]\nconfig = "{lab.config}"\n\n'
                         f'[hosts.client]\nssh = "{lab.alias("client")}"\nrole = "client"\n')
    rc, report = _doctor(lab, "--inventory", str(inventory))
    assert rc == 0 and report["hosts"][0]["role"] == "client"
    proc = cli("doctor", "--vip", "192.168.7.33:8000", "--ssh-config", str(lab.config),
               "--host", "gone=root@198.18.255.254", "--ssh-option", "ConnectTimeout=2")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.startswith("dr-inspect: error: ssh root@198.18.255.254 (gone): ") and len(err.splitlines()) == 1


def test_remote_capture_snapshots_let_verify_join_host_causes(farm, tmp_path):
    state, lab = farm
    from dr_inspect.lab import run_traffic

    args = ["--ssh-config", str(lab.config), "-q", "--out", str(tmp_path / "set")]
    for host in ("switch", "director", "rs1"):
        args += ["--host", f"{host}={lab.alias(host)}"]
    proc = cli("capture", *args, "--iface", "switch:br_e", "--iface", "switch:br_lvs")
    try:
        wait_capturing(lab, ["switch"], proc)
        deadline = time.monotonic() + 120
        while len(list((tmp_path / "set" / "snapshots").glob("*.json"))) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        run_traffic(state, requests=6, concurrency=2)
        time.sleep(1.5)
        rc, _out, err = stop(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, err
    report = verify_paths([tmp_path / "set"])
    dr005 = next(r for r in report.rules if r.id == "DR005")
    assert dr005.status == "fail"
    assert any("HC002" in cause and "rs1" in cause for cause in dr005.host_causes), dr005.host_causes
    # doctor on the set reads the snapshots the capture took over ssh
    proc = cli("doctor", str(tmp_path / "set"), "--format", "json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    offline = json.loads(out)
    rs1 = next(h for h in offline["hosts"] if h["host"] == "rs1")
    assert _checks(rs1)[("HC002", "eth14")] == "fail"
    assert wait_clean(state, lab) == []


def test_keepalived_state_is_read_when_it_runs():
    """No lab: a runner answering as a director running keepalived (and one without it)."""
    from dr_inspect.doctor.snapshot import CommandFailed

    answers = {"pidof keepalived": "812 811\n",
               "cat /etc/keepalived/keepalived.conf": "vrrp_instance VI_1 {\n state BACKUP\n}\n",
               "journalctl -u keepalived -n 200 --no-pager -o short-iso":
                   "2026-12-03T10:00:00 d1 Keepalived_vrrp[812]: (VI_1) Entering BACKUP STATE\n"
                   "2026-12-03T10:05:00 d1 Keepalived_vrrp[812]: (VI_1) sent 0 priority\n"
                   "2026-12-03T10:05:01 d1 Keepalived_vrrp[812]: (VI_1) Entering MASTER STATE\n"}

    def runner(argv: list[str]) -> str:
        try:
            return answers[" ".join(argv)]
        except KeyError:
            raise CommandFailed(f"{argv[0]}: not found") from None

    snap = take_snapshot(runner=runner, host="d1")
    assert snap["keepalived"]["pids"] == ["812", "811"]
    assert "state BACKUP" in snap["keepalived"]["conf"]
    assert [s.split(": ")[-1] for s in snap["keepalived"]["states"]] == ["(VI_1) Entering BACKUP STATE",
                                                                    "(VI_1) Entering MASTER STATE"]
    del answers["pidof keepalived"]
    snap = take_snapshot(runner=runner, host="rs1")
    assert snap["keepalived"] is None and "keepalived" not in " ".join(snap["errors"])
