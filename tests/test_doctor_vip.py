"""doctor on a capture set learns the VIP from the traffic as verify does (no --vip needed), its
JSON names its schema, and `--role director --netns` on the lab's VM director says how to reach it."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from conftest import ROOT
from dr_inspect.cli import main
from dr_inspect.analysis.paths import vip_from_traffic
from dr_inspect.doctor.run import doctor_capture_set
from dr_inspect.lab.plan import LabConfig
from dr_inspect.lab.state import LabHost, LabState


def set_without_vip(tmp_path, name: str = "fault-rs-answers-arp"):
    """A bundled set whose manifest does not name the VIP (as `capture` writes it)."""
    out = tmp_path / name
    shutil.copytree(ROOT / "captures" / name, out)
    manifest = out / "manifest.toml"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(l for l in lines if not l.startswith(("vip =", "port ="))) + "\n")
    return out


def test_vip_learned_from_the_traffic(tmp_path):
    path = set_without_vip(tmp_path, "seed-nft")
    assert str(vip_from_traffic(path)[0]) == "192.168.7.33"
    report = doctor_capture_set(path, traffic_vip=vip_from_traffic)
    assert report.vip == "192.168.7.33:8000"


def test_cli_needs_no_vip_and_json_has_schema(tmp_path):
    path = set_without_vip(tmp_path)
    result = CliRunner().invoke(main, ["doctor", str(path), "--format", "json"])
    assert result.exit_code == 1, result.output          # rs1 answers ARP: HC002 fails
    doc = json.loads(result.output)
    assert doc["schema"] == "dr-inspect.doctor/1"
    assert doc["vip"] == "192.168.7.33:8000"
    assert any(c["id"] == "HC002" and c["status"] == "fail"
               for h in doc["hosts"] for c in h["checks"])


def test_vm_director_netns_says_lab_exec(tmp_path, monkeypatch):
    import dr_inspect.lab.state as lab_state
    monkeypatch.setattr(lab_state, "STATE_DIR", tmp_path)
    state = LabState(prefix="tv", config=LabConfig(prefix="tv"), switch_netns="tv-sw",
                     hosts={"director": LabHost("director", "director", None, {})},
                     namespaces=["tv-sw", "tv-client"])
    lab_state.save_state(state)
    result = CliRunner().invoke(main, ["doctor", "--role", "director", "--vip", "192.168.7.33:8000",
                                       "--netns", "tv-director"])
    assert result.exit_code == 2
    assert "qemu VM" in result.output
    assert "dr-inspect lab exec --prefix tv director ipvsadm -Ln --stats" in result.output
