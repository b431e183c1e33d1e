"""Connection filters (verify/report/ladder --client, --rs, --vip, --since, --until;
dr_inspect/analysis/filters.py): a filtered run judges exactly the unfiltered run's connections
that match, names the real servers as the unfiltered run does, never passes a rule a kept
connection breaks, and a filter that selects nothing is an error naming it."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scenarios.build import write_scenario
from scenarios.model import Fault, Scenario

from capturegen import CLIENT_IP, CLIENT_MAC, DIRECTOR_MAC, VIP, write_pcap
from conftest import ROOT
from dr_inspect.analysis.paths import analyse_paths
from dr_inspect.cli import main
from dr_inspect.cli.options import TIME_BOUND
from dr_inspect.errors import InputError
from dr_inspect.options import FlowFilter, TimeBound, VerifyOptions
from dr_inspect.rules import load_rules

SETS = sorted(p for p in (ROOT / "captures").iterdir() if (p / "manifest.toml").exists())
SEED = ROOT / "captures" / "seed-ipvs"
# kinds whose evidence is per connection (a balance over the kept connections is another
# question: DR011 is judged on them, not on the whole set)
PER_CONNECTION = ("each", "none", "distinct-at-most")
EVERY = 10_000        # evidence kept per rule: all of it, so every failing connection is named


def analyse(path: Path, flt: FlowFilter | None = None):
    return analyse_paths([path], VerifyOptions(max_evidence=EVERY, flow_filter=flt))


@lru_cache(maxsize=None)
def unfiltered(path: Path):
    return analyse(path)


def connections(analysis) -> set[str]:
    return set(analysis.flows["five_tuple"].astype(str))


def matching(analysis, column: str, accept) -> set[str]:
    flows = analysis.flows
    return {str(t) for t, v in zip(flows["five_tuple"], flows[column]) if accept(str(v))}


def failing_connections(analysis) -> dict[str, set[int]]:
    """rule id -> the flow ids its evidence names (rules judged per connection)."""
    kinds = {r.id: r.kind for r in load_rules([])}
    return {r.id: {e.extra["flow_id"] for e in r.evidence if "flow_id" in e.extra}
            for r in analysis.report.rules
            if r.status == "fail" and kinds.get(r.id) in PER_CONNECTION}


def check_filtered(path: Path, flt: FlowFilter, expected: set[str]) -> None:
    """The filtered run of `path` judges exactly `expected` (five-tuples) with the unfiltered
    run's names, and fails every per-connection rule a kept connection breaks."""
    whole = unfiltered(path)
    part = analyse(path, flt)
    assert connections(part) == expected, flt
    assert part.report.topology == whole.report.topology
    assert part.report.stats["clock_offsets_ns"] == whole.report.stats["clock_offsets_ns"]
    ids = dict(zip(whole.flows["five_tuple"].astype(str), whole.flows["flow_id"]))
    kept = {ids[t] for t in expected}
    status = {r.id: r.status for r in part.report.rules}
    for rule, flows in failing_connections(whole).items():
        if flows & kept:
            assert status[rule] == "fail", (flt, rule, sorted(flows & kept))
    # a kept connection keeps its flow id and evidence names no other connection
    assert set(part.flows["flow_id"]) == kept
    for r in part.report.rules:
        assert {e.extra["flow_id"] for e in r.evidence if "flow_id" in e.extra} <= kept
    assert part.report.filter["connections"] == len(expected)
    assert part.report.filter["connections_left_out"] == len(whole.flows) - len(expected)


def clients_of(analysis) -> list[str]:
    return sorted(set(analysis.flows["client_ip"].astype(str)))


def servers_of(analysis) -> list[str]:
    return sorted(set(analysis.flows["real_server"].astype(str)) - {""})


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.name)
def test_bundled_sets_client_and_rs_filters_select_exactly_the_matching_connections(path):
    whole = unfiltered(path)
    union: set[str] = set()
    for client in clients_of(whole):
        expected = matching(whole, "client_ip", client.__eq__)
        check_filtered(path, FlowFilter(clients=(client,)), expected)
        union |= expected
    assert union == connections(whole)
    for rs in servers_of(whole):
        check_filtered(path, FlowFilter(real_servers=(rs,)),
                       matching(whole, "real_server", rs.__eq__))


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.name)
def test_bundled_sets_time_window_halves_partition_the_connections(path):
    whole = unfiltered(path)
    start = int(whole.packets["ts_ns"].min())
    ts = sorted(int(t) for t in whole.flows["ts_ns"])
    middle = ts[len(ts) // 2]
    offset = TimeBound(f"{(middle - start) / 1e9}s", offset_s=(middle - start) / 1e9)
    first = {t for t, s in zip(whole.flows["five_tuple"].astype(str), whole.flows["ts_ns"])
             if int(s) < offset.at_ns(start)}
    for half, expected in ((FlowFilter(until=offset), first),
                           (FlowFilter(since=offset), connections(whole) - first)):
        if expected:
            check_filtered(path, half, expected)
        else:
            # a set of one connection: its empty half is an error, never a pass
            with pytest.raises(InputError, match="no connection matches"):
                analyse(path, half)


def scenario_set(tmp: Path) -> Path:
    """Two VIPs, three clients, three real servers; rs2 lacks the VIP (DR009 on its
    connections), rs3 answers ARP for it (DR005/DR012)."""
    sc = Scenario(seed=7, vips=2, clients=3, real_servers=3, rounds=2,
                  faults=(Fault("rs-no-vip", rs=1), Fault("rs-answers-arp", rs=2, variant="some")))
    write_scenario(sc, tmp)
    return tmp


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return scenario_set(tmp_path_factory.mktemp("filters-scenario"))


def test_scenario_every_dimension_selects_exactly_its_connections(scenario):
    whole = unfiltered(scenario)
    assert len(whole.report.topology.vips) == 2 and len(clients_of(whole)) == 3
    for dimension, values, column in (("clients", clients_of(whole), "client_ip"),
                                      ("real_servers", servers_of(whole), "real_server"),
                                      ("vips", whole.report.topology.vips, "vip")):
        union: set[str] = set()
        for value in values:
            expected = matching(whole, column, value.__eq__)
            check_filtered(scenario, FlowFilter(**{dimension: (value,)}), expected)
            union |= expected
        if dimension != "real_servers":      # connections never forwarded have no server
            assert union == connections(whole), dimension


def test_scenario_cidr_rip_mac_and_combined_filters(scenario):
    whole = unfiltered(scenario)
    rs = whole.report.topology.real_servers[0]
    by_name = matching(whole, "real_server", rs.name.__eq__)
    check_filtered(scenario, FlowFilter(real_servers=(rs.rip,)), by_name)
    check_filtered(scenario, FlowFilter(real_servers=(next(iter(rs.macs.values())).upper(),)),
                   by_name)
    client = clients_of(whole)[0]
    network = str(ipaddress.ip_network(f"{client}/24", strict=False))
    in_net = matching(whole, "client_ip", lambda ip: ipaddress.ip_address(ip)
                      in ipaddress.ip_network(network))
    check_filtered(scenario, FlowFilter(clients=(network,)), in_net)
    vip = whole.report.topology.vips[0]
    bare_ip = vip.rpartition(":")[0]
    both = in_net & by_name & matching(whole, "vip", lambda v: v.rpartition(":")[0] == bare_ip)
    if both:
        check_filtered(scenario, FlowFilter(clients=(network,), real_servers=(rs.name,),
                                            vips=(bare_ip,)), both)


def test_scenario_vip_filter_keeps_only_arp_about_its_address(scenario):
    whole = unfiltered(scenario)
    vip = whole.report.topology.vips[0].rpartition(":")[0]
    part = analyse(scenario, FlowFilter(vips=(vip,)))
    arp = part.tables["arp"]
    about = [vip in (str(a), str(b), str(c)) for a, b, c in
             zip(arp["vip"], arp["target_ip"], arp["sender_ip"])]
    assert len(arp) and all(about)
    assert part.report.filter["arp_left_out"] == len(whole.tables["arp"]) - len(arp) > 0


@pytest.mark.parametrize("flt,message", [
    (FlowFilter(clients=("10.9.9.9",)), "no connection matches --client 10.9.9.9 (clients seen: "
                                        "192.168.7.2)"),
    (FlowFilter(clients=("10.0.0.0/8", "172.16.0.0/12")),
     "no connection matches --client 10.0.0.0/8 --client 172.16.0.0/12 (clients seen:"),
    (FlowFilter(real_servers=("web9",)), "--rs web9: no real server has this name, RIP or MAC "
                                         "(known: rs1 (192.168.88.20"),
    (FlowFilter(vips=("192.168.7.33:9999",)), "no connection matches --vip 192.168.7.33:9999 "
                                              "(VIPs with connections: 192.168.7.33:8000)"),
    (FlowFilter(since=TimeBound("1h", offset_s=3600.0)),
     "no connection matches --since 1h (connections start 0.003 s .. 0.126 s after"),
])
def test_a_filter_selecting_nothing_is_an_error_naming_it(flt, message):
    with pytest.raises(InputError) as caught:
        analyse(SEED, flt)
    assert message in str(caught.value)


def test_filter_values_are_checked_before_the_analysis():
    with pytest.raises(InputError, match="--client 'x/99' is not an IP address or a CIDR"):
        FlowFilter(clients=("x/99",))
    with pytest.raises(InputError, match="--rs: give"):
        FlowFilter(real_servers=("",))


@pytest.mark.parametrize("text,expected", [
    ("30s", TimeBound("30s", offset_s=30.0)),
    ("2m", TimeBound("2m", offset_s=120.0)),
    ("2026-11-30T07:50:21Z", TimeBound("2026-11-30T07:50:21Z", epoch_ns=int(
        datetime(2026, 11, 30, 7, 50, 21, tzinfo=timezone.utc).timestamp()) * 10**9)),
    ("2026-11-30T07:50:21.5", TimeBound("2026-11-30T07:50:21.5", epoch_ns=int(
        datetime(2026, 11, 30, 7, 50, 21, tzinfo=timezone.utc).timestamp()) * 10**9 + 5 * 10**8)),
    ("2026-11-30T08:50:21+01:00", TimeBound("2026-11-30T08:50:21+01:00", epoch_ns=int(
        datetime(2026, 11, 30, 7, 50, 21, tzinfo=timezone.utc).timestamp()) * 10**9)),
])
def test_time_bounds_parse_offsets_and_iso_times(text, expected):
    assert TIME_BOUND.convert(text, None, None) == expected


def run(*args: str):
    return CliRunner().invoke(main, [*args, "-q"])


def one_error_line(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dr-inspect: error: ") and text in lines[0], \
        result.output


@pytest.mark.parametrize("command", [["verify"], ["report", "--html", "{tmp}/r.html"],
                                     ["ladder", "--list"]])
def test_cli_empty_selection_is_one_error_line_exit_2(command, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    one_error_line(run(*args, str(SEED), "--client", "10.9.9.9"),
                   "no connection matches --client 10.9.9.9 (clients seen: 192.168.7.2)")
    one_error_line(run(*args, str(SEED), "--rs", "nope"), "known: rs1 (192.168.88.20")
    one_error_line(run(*args, str(SEED), "--until", "2000-01-01T00:00:00"),
                   "no connection matches --until 2000-01-01T00:00:00")


def test_cli_reports_say_the_filter_and_what_it_left_out(tmp_path):
    line = ("filter: --rs rs1: 3 of 6 connections judged (3 left out); ARP/ND frames: 8 kept, "
            "2 left out")
    table = run("verify", str(SEED), "--rs", "rs1")
    assert table.exit_code == 0 and table.output.splitlines()[0] == line
    assert "6 flows" not in table.output and "3 flows" in table.output
    doc = json.loads(run("verify", str(SEED), "--rs", "rs1", "--format", "json").output)
    assert doc["filter"] == {"filter": "--rs rs1", "connections": 3, "connections_left_out": 3,
                             "arp_frames": 8, "arp_left_out": 2}
    assert {c["real_server"] for c in doc["connections"]} == {"rs1"}
    assert "filter" not in json.loads(run("verify", str(SEED), "--format", "json").output)
    markdown = run("verify", str(SEED), "--rs", "rs1", "--format", "markdown").output
    assert "filter: --rs rs1: 3 of 6 connections judged" in markdown
    junit = run("verify", str(SEED), "--rs", "rs1", "--format", "junit").output
    assert f'<property name="filter" value="{line}" />' in junit
    html_file = tmp_path / "r.html"
    assert run("report", str(SEED), "--rs", "rs1", "--html", str(html_file)).exit_code == 0
    assert f'<p class="filter" id="filter">{line}</p>' in html_file.read_text()
    listed = run("ladder", str(SEED), "--list", "--client", "192.168.7.2", "--since", "50ms")
    assert listed.exit_code == 0 and listed.output.startswith(
        "filter: --client 192.168.7.2 --since 50ms: 4 of 6 connections judged")
    assert "4 connections" in listed.output


def test_cli_ladder_draws_the_first_selected_connection():
    whole = unfiltered(SEED)
    first_rs2 = int(whole.flows[whole.flows["real_server"] == "rs2"]["flow_id"].min())
    drawn = run("ladder", str(SEED), "--rs", "rs2")
    assert drawn.exit_code == 0 and drawn.output.startswith(f"flow {first_rs2}: ")
    assert "via rs2" in drawn.output.splitlines()[0]


def test_cli_vip_the_traffic_does_not_show_is_still_pinned(tmp_path):
    """--vip was a pin before it was a filter: SYNs to a VIP that nothing forwards or answers
    show no DR service to learn; the VIP given is still verified (its connections judged; FAIL:
    the core rules are not exercised without a forwarded copy)."""
    syns = [Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / IP(src=CLIENT_IP, dst=VIP)
            / TCP(sport=40000 + k, dport=8000, seq=k, flags="S") for k in range(3)]
    pcap = write_pcap(tmp_path / "syns.pcap", syns)
    unpinned = run("verify", str(pcap))
    one_error_line(unpinned, "no LVS-DR virtual service found")
    pinned = run("verify", str(pcap), "--vip", f"{VIP}:8000")
    assert pinned.exit_code == 1, pinned.output
    assert pinned.output.startswith(f"filter: --vip {VIP}:8000: 3 of 3 connections judged")
    assert f"VIPs {VIP}:8000" in pinned.output


def test_every_filter_option_has_help_and_an_example_on_each_command():
    for command in ("verify", "report", "ladder"):
        text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
        options, examples = text.split("Examples:", 1)
        for option in ("--client", "--rs", "--vip", "--since", "--until"):
            assert f"{option} " in options, (command, option)
        assert any(f"{o} " in examples for o in ("--client", "--rs", "--vip", "--since")), command
    shown = " ".join(CliRunner().invoke(main, [c, "--help"]).output.split("Examples:", 1)[1]
                     for c in ("verify", "report", "ladder"))
    for option in ("--client", "--rs", "--vip", "--since", "--until"):
        assert option in shown, option


def test_dask_engine_takes_vip_as_a_pin_and_refuses_the_other_filters():
    from dr_inspect.cli.verify import dask_options
    pinned = dask_options(VerifyOptions(flow_filter=FlowFilter(vips=("192.168.7.33:8000",))))
    assert pinned.vips == ("192.168.7.33:8000",) and pinned.flow_filter is None
    one_error_line(run("verify", str(SEED), "--engine", "dask", "--rs", "rs1"),
                   "--rs rs1: filters need the local engine (--engine local)")


def test_cli_ladder_flow_outside_the_filter_says_so():
    one_error_line(run("ladder", str(SEED), "--rs", "rs1", "--flow", "1"),
                   "flow 1 is not one --rs rs1 selects (flows 2, 4, 6)")
    drawn = run("ladder", str(SEED), "--rs", "rs1", "--flow", "2")
    assert drawn.exit_code == 0 and drawn.output.startswith("flow 2: ")
