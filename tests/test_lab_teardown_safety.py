"""`lab down --prefix X` touches only what the lab recorded (its state file or its namespace
markers), never another namespace that merely starts with `X-` (`--prefix cni` next to a
container runtime); lab VIPs that cannot be a service address are refused."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import require_root_netns
from dr_inspect.errors import LabError
from dr_inspect.lab import LabConfig, lab_down, lab_status
from dr_inspect.lab import sysrun
from dr_inspect.lab.state import LabState, marked_namespaces, save_state, state_path

PREFIX = f"hd{os.getpid() % 100000}"


@pytest.mark.parametrize("vip", ["0.0.0.0", "127.0.0.1", "255.255.255.255", "224.0.0.5",
                                 "192.168.7.255", "192.168.7.0", "169.254.0.9", "240.1.2.3"])
def test_unusable_vips_are_refused(vip):
    with pytest.raises(LabError, match="not a unicast host address"):
        LabConfig(vip=vip).validate()


def test_a_usable_vip_is_accepted():
    LabConfig(vip="10.20.30.40").validate()


@pytest.fixture
def namespaces():
    require_root_netns()
    made: list[str] = []

    def add(name: str) -> str:
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        return name
    yield add
    for name in made:
        for pid in sysrun.netns_pids(name):
            sysrun.kill_pid(pid)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    lab_down(PREFIX)


def test_lab_down_leaves_foreign_namespaces_and_their_processes(namespaces):
    foreign = namespaces(f"{PREFIX}-foreign")
    sleeper = subprocess.Popen(["ip", "netns", "exec", foreign, "sleep", "60"])
    try:
        time.sleep(0.3)
        removed = lab_down(PREFIX)
        assert foreign in sysrun.list_netns()
        assert sleeper.poll() is None, "a process in a foreign namespace was killed"
        assert not any(foreign in line for line in removed)
        status = lab_status(PREFIX)
        assert status is None or any("never made it" in x for x in status.leftovers)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lab_down_removes_what_the_markers_name_without_a_state_file(namespaces):
    ours = f"{PREFIX}-sw"
    state = LabState(prefix=PREFIX, config=LabConfig(prefix=PREFIX), switch_netns=ours, hosts={},
                     namespaces=[ours])
    save_state(state)
    namespaces(ours)
    foreign = namespaces(f"{PREFIX}-other")
    state_path(PREFIX).unlink()              # the state file lost (a crash, /run wiped)
    assert marked_namespaces(PREFIX) == [ours]
    removed = lab_down(PREFIX)
    assert ours not in sysrun.list_netns() and any(ours in line for line in removed)
    assert foreign in sysrun.list_netns()
    assert marked_namespaces(PREFIX) == []


def test_lab_up_names_foreign_namespaces_and_does_not_advise_lab_down(namespaces):
    """A namespace that shares the prefix but no lab made: lab up says which, that lab down
    leaves it alone, and what to do instead; it touches nothing."""
    from dr_inspect.lab import lab_up
    foreign = namespaces(f"{PREFIX}-cni0")
    with pytest.raises(LabError) as caught:
        lab_up(LabConfig(prefix=PREFIX, director="nft"))
    message = str(caught.value)
    assert f"network namespace(s) {foreign} exist but no lab made them" in message
    assert "lab down leaves them alone: use another --prefix" in message
    assert f"ip netns delete {foreign}" in message and "run 'dr-inspect lab down" not in message
    assert foreign in sysrun.list_netns() and not state_path(PREFIX).exists()


def test_lab_up_on_its_own_leftovers_advises_lab_down(namespaces):
    from dr_inspect.lab import lab_up
    ours = f"{PREFIX}-sw"
    save_state(LabState(prefix=PREFIX, config=LabConfig(prefix=PREFIX), switch_netns=ours,
                        hosts={}, namespaces=[ours]))
    namespaces(ours)
    state_path(PREFIX).unlink()              # only the marker says it is the lab's
    with pytest.raises(LabError, match=f"lab '{PREFIX}' is already up or left over \\({ours}\\): "
                                       f"run 'dr-inspect lab down --prefix {PREFIX}' first"):
        lab_up(LabConfig(prefix=PREFIX, director="nft"))
