"""doctor on the live lab: every lab fault that is a host misconfiguration is found by the right
HC check with a fix command that really fixes it; the healthy lab passes; missing tools give
not-checked. Lab prefix "t6" (ours only)."""

from __future__ import annotations

import shlex
import subprocess
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from conftest import require, require_root_netns, require_tool, running_lab
from dr_inspect.cli import main
from dr_inspect.doctor.checks import parse_vip
from dr_inspect.doctor.run import doctor_live, doctor_snapshots
from dr_inspect.doctor.snapshot import make_runner, runner_from, take_snapshot, write_snapshot

pytestmark = pytest.mark.lab
PREFIX = "t6"

# fault -> (check that must fail on rs1, its subject, other checks the same misconfiguration fails)
RS_FAULTS = {
    "rs-answers-arp": ("HC002", "eth14", set()),
    "rs-arp-announce": ("HC003", "eth14", set()),
    "rs-no-vip": ("HC001", "VIP", set()),
    "rs-vip-wide-mask": ("HC001", "lo", {"HC005"}),     # the /24 on lo makes the clients local
    "reply-via-director": ("HC005", "clients 192.168.7.0/24", set()),
    "rs-rp-filter": ("HC004", "eth12", set()),
    "port-mismatch": ("HC006", "192.168.7.33:8000", set()),
    "forwarding-loop": ("HC001", "VIP", {"HC007"}),       # it forwards without the VIP: a loop
}


def _need_lab():
    require_root_netns()
    require_tool("nft", "nftables")
    try:
        import dr_inspect.lab  # noqa: F401
    except ImportError as exc:
        require(False, f"dr_inspect.lab not importable: {exc}")


@contextmanager
def lab(director: str = "nft", faults: tuple[str, ...] = ()):
    with running_lab(PREFIX, director=director, real_servers=1, faults=faults) as state:
        yield state


def _dip(state) -> str:
    return state.hosts["director"].interfaces["eth8"]["ip"]


def _doctor_rs(state):
    return doctor_live("realserver", f"{state.vip}:{state.port}", state.hosts["rs1"].netns,
                       director_ips=(_dip(state),))


def _apply(fix: str) -> None:
    for line in fix.split("; "):
        subprocess.run(shlex.split(line), check=True, capture_output=True, timeout=30)


def test_healthy_lab_passes_every_check():
    _need_lab()
    with lab() as state:
        rs = _doctor_rs(state)
        director = doctor_live("director", f"{state.vip}:{state.port}", state.hosts["director"].netns)
        for report in (rs, director):
            assert [c.line for c in report.checks if c.status == "fail"] == []
            assert report.exit_code == 0
        assert {c.id for c in rs.checks if c.status == "pass"} == {"HC001", "HC002", "HC003", "HC004", "HC005", "HC006",
                                                                   "HC007"}
        # The nft director is no IPVS: the rule is recognised; RIP reachability cannot be read from it.
        assert {c.id for c in director.checks if c.status == "pass"} == {"HC010", "HC011", "HC012", "HC014"}
        assert [c.id for c in director.checks if c.status == "not-checked"] == ["HC013"]
        res = CliRunner().invoke(main, ["doctor", "--role", "realserver", "--vip", f"{state.vip}:{state.port}",
                                        "--netns", state.hosts["rs1"].netns, "--director-ip", _dip(state)])
        assert res.exit_code == 0, res.output


@pytest.mark.parametrize("fault", sorted(RS_FAULTS))
def test_rs_fault_found_by_the_right_check_and_its_fix_works(fault):
    _need_lab()
    check_id, subject, also = RS_FAULTS[fault]
    with lab(faults=(fault,)) as state:
        report = _doctor_rs(state)
        failed = [c for c in report.checks if c.status == "fail"]
        assert {c.id for c in failed} == {check_id} | also, [c.line for c in failed]
        hit = next(c for c in failed if c.id == check_id)
        assert hit.subject == subject and hit.host == f"{PREFIX}-rs1"
        assert report.exit_code == 1
        if check_id == "HC006":                 # a service to restart, not a command line
            assert "8000" in hit.fix
            return
        assert hit.fix.startswith(f"ip netns exec {PREFIX}-rs1 ")
        for fix in dict.fromkeys(c.fix for c in failed):    # one cause can fail two checks
            _apply(fix)
        after = _doctor_rs(state)
        assert [c.line for c in after.checks if c.status == "fail"] == []


def test_reply_via_director_found_offline_from_a_capture_set(tmp_path):
    """Offline, the real server learns the director's DIP from the director's snapshot."""
    _need_lab()
    with lab(faults=("reply-via-director",)) as state:
        root = tmp_path / "set"
        for host in ("director", "rs1"):
            write_snapshot(take_snapshot(state.hosts[host].netns, host=host), root / "snapshots" / f"{host}.json")
        (root / "manifest.toml").write_text(
            f'[capture]\nvip = "{state.vip}"\nport = {state.port}\n\n[snapshots]\n'
            'director = "snapshots/director.json"\nrs1 = "snapshots/rs1.json"\n')
    res = CliRunner().invoke(main, ["doctor", str(root)])
    assert res.exit_code == 1, res.output
    assert "HC005" in res.output and f"ip netns exec {PREFIX}-rs1 ip route del 192.168.7.2 via {_dip(state)}" in res.output


def test_missing_tools_give_not_checked():
    _need_lab()
    with lab() as state:
        inner = make_runner(state.hosts["director"].netns)

        def no_fw_tools(argv):
            if argv[0] in ("nft", "ipvsadm", "iptables-save"):
                raise RuntimeError(f"{argv[0]}: not found")
            return inner(argv)

        snap = take_snapshot(runner=no_fw_tools, host="director")
        vip, port = parse_vip(f"{state.vip}:{state.port}")
        report = doctor_snapshots({"director": snap}, vip, port, roles={"director": "director"})
        status = {c.id: (c.status, c.reason) for c in report.checks}
        for check_id in ("HC011", "HC012", "HC013", "HC014"):
            assert status[check_id][0] == "not-checked", status[check_id]
            assert "not found" in status[check_id][1]
        assert status["HC010"][0] == "pass"

        rs_inner = make_runner(state.hosts["rs1"].netns)

        def no_listeners(argv):
            if argv[0] == "ss" or argv[:2] == ["cat", "/proc/net/tcp"]:
                raise RuntimeError("Permission denied")
            return rs_inner(argv)

        snap = take_snapshot(runner=no_listeners, host="rs1")
        report = doctor_snapshots({"rs1": snap}, vip, port, roles={"rs1": "realserver"},
                                  director_ips=(_dip(state),))
        hc6 = [c for c in report.checks if c.id == "HC006"]
        assert [c.status for c in hc6] == ["not-checked"] and "Permission denied" in hc6[0].reason
        assert report.exit_code == 0


def test_ipvs_vm_director_drops_invalid():
    """The IPVS director runs in a busybox VM: snapshot it through the lab's console runner."""
    _need_lab()
    require_tool("qemu-system-x86_64", "qemu-system-x86")
    with lab(director="ipvs", faults=("director-drops-invalid",)) as state:
        require(state.director_mode in ("ipvs-vm", "ipvs-netns"), f"unexpected director mode {state.director_mode}")
        if state.hosts["director"].netns:
            snap = take_snapshot(state.hosts["director"].netns, host="director")
        else:
            snap = take_snapshot(runner=runner_from(lambda argv: state.run("director", argv)), host="director")
        vip, port = parse_vip(f"{state.vip}:{state.port}")
        report = doctor_snapshots({"director": snap}, vip, port)
        assert report.hosts[0].role == "director"            # guessed from its IPVS table
        status = {c.id: c for c in report.checks}
        assert {c.id for c in report.checks if c.status == "fail"} == {"HC014"}
        assert status["HC011"].status == "pass" and "TCP 192.168.7.33:8000" in status["HC011"].found
        assert status["HC012"].status == "pass" and status["HC013"].status == "pass"
        assert status["HC014"].fix.startswith("nft delete rule inet dr_fw input handle ")
        if state.hosts["director"].netns is None:
            assert snap["sources"]["addr"] == "ip addr"      # busybox: no `ip -j`
            _apply_in_vm = runner_from(lambda argv: state.run("director", argv))
            _apply_in_vm(shlex.split(status["HC014"].fix))
            fixed = take_snapshot(runner=runner_from(lambda argv: state.run("director", argv)), host="director")
            assert [c.line for c in doctor_snapshots({"director": fixed}, vip, port).checks
                    if c.status == "fail"] == []


def test_stale_arp_on_the_client():
    _need_lab()
    with lab(faults=("stale-arp",)) as state:
        vip = f"{state.vip}:{state.port}"
        client_ns = state.hosts["client"].netns
        director_mac = state.hosts["director"].interfaces["eth7"]["mac"]
        report = doctor_live("client", vip, client_ns, director_macs=(director_mac,))
        (hc20,) = report.checks
        assert hc20.status == "fail" and "02:00:de:ad:be:ef" in hc20.found and "PERMANENT" in hc20.found
        _apply(hc20.fix)
        assert doctor_live("client", vip, client_ns, director_macs=(director_mac,)).exit_code == 0
        # Without the director's MAC a lone client cannot judge the entry: not checked, exit 0.
        res = CliRunner().invoke(main, ["doctor", "--role", "client", "--vip", vip, "--netns", client_ns])
        assert res.exit_code == 0 and "FAIL" not in res.output


def _lab_capture_set(state, out_dir):
    from dr_inspect.lab.demo import capture_traffic, seed_traffic
    return capture_traffic(state, out_dir, seed_traffic(requests=4, concurrency=2, curl=1, timeout=2.0))


def test_capture_set_of_the_lab_is_doctored_offline(tmp_path):
    """The lab's own capture set (pcaps, manifest, snapshots of every host) through `doctor SET`."""
    _need_lab()
    require_tool("tcpdump", "tcpdump")
    with lab(faults=("rs-answers-arp",)) as state:
        run = _lab_capture_set(state, tmp_path / "set")
    res = CliRunner().invoke(main, ["doctor", str(run.out_dir), "--format", "json"])
    assert res.exit_code == 1, res.output
    import json
    data = json.loads(res.output)
    roles = {h["host"]: (h["role"], h["role_source"]) for h in data["hosts"]}
    assert roles["director"][0] == "director" and roles["rs1"][0] == "realserver" and roles["client"][0] == "client"
    failed = [(c["id"], c["host"], c["subject"]) for h in data["hosts"] for c in h["checks"] if c["status"] == "fail"]
    assert failed == [("HC002", "rs1", "eth14")]


def test_verify_report_gets_host_causes(tmp_path):
    """verify + join: the failing DR005 of a lab capture names rs1's arp_ignore and its fix."""
    _need_lab()
    require_tool("tcpdump", "tcpdump")
    from dr_inspect import verify
    from dr_inspect.captureset import load_capture_set
    from dr_inspect.doctor.join import host_causes
    from dr_inspect.doctor.snapshot import read_snapshot
    with lab(faults=("rs-answers-arp",)) as state:
        run = _lab_capture_set(state, tmp_path / "set")
    report = verify([run.out_dir])          # verify joins the set's snapshots itself
    dr005 = next(r for r in report.rules if r.id == "DR005")
    require(dr005.status == "fail", f"DR005 did not fail on the rs-answers-arp capture ({dr005.status}: {dr005.note})")
    hc = [c for c in dr005.host_causes if c.startswith("HC002")]
    assert len(hc) == 1 and hc[0].startswith("HC002 on real server rs1 (")
    assert "eth14" in hc[0] and "arp_ignore=1" in hc[0]
    before = [list(r.host_causes) for r in report.rules]
    snaps = {h: read_snapshot(p) for h, p in load_capture_set([run.out_dir]).snapshots.items()}
    host_causes(snaps, report)                    # a second join adds nothing
    assert [r.host_causes for r in report.rules] == before
