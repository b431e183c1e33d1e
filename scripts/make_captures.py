#!/usr/bin/env python3
"""Regenerate the bundled capture sets in captures/ from the lab (root; real kernel networking).

    sudo python scripts/make_captures.py                  # every set
    sudo python scripts/make_captures.py seed-nft fault-port-mismatch
    sudo python scripts/make_captures.py --list

Each set: br_e.pcap and br_lvs.pcap (capture on both bridges of the lab's switch namespace),
manifest.toml (points, roles, interfaces, director backend, faults), snapshots/<host>.json, and
expected.toml (`fail` = the DR rule ids that must fail on it, `description` = why). Healthy seed
sets expect no failure. Fault sets use the ipvs director (real IPVS, round robin, so which
connection meets the faulty rs1 is deterministic) with two real servers; after writing a set the
script runs `verify` on it and reports any disagreement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dr_inspect.errors import DrInspectError  # noqa: E402
from dr_inspect.lab import FAULTS, LabConfig, lab_down, lab_up, run_curl, run_traffic  # noqa: E402
from dr_inspect.lab.demo import capture_traffic, lab_description, verify_capture  # noqa: E402

# Why each fault breaks exactly these rules (rules/dr.toml), for expected.toml.
WHY = {
    "rs-answers-arp": "rs1 answers the client's ARP request for the VIP as well as the director, so two "
                      "MACs claim the VIP on br_e (DR005); rs1 (a namespace) answered before the "
                      "director VM, the client kept that first answer and sent every connection "
                      "straight to rs1's MAC (DR012).",
    "rs-arp-announce": "rs1, replying to the client after its neighbour cache was emptied, asks 'who-has "
                       "client tell VIP' from its own MAC on br_e (DR006); the client takes that request "
                       "as news that the VIP moved to rs1's MAC and sends its later connections "
                       "straight there (DR012).",
    "rs-no-vip": "SYNs IPVS forwards to rs1 are dropped there (no local VIP, no forwarding): forwarded "
                 "SYNs without a SYN-ACK from the VIP and retransmitted SYNs (DR009). Connections to rs2 "
                 "work.",
    "rs-vip-wide-mask": "with VIP/24 on lo the whole client subnet is local to rs1: its SYN-ACKs never "
                        "leave, so forwarded SYNs to rs1 stay unanswered (DR009).",
    "reply-via-director": "rs1 sends its replies (from the VIP) to the director's eth8 MAC on br_lvs "
                          "(DR003); the director drops them as martians (their source is its own VIP). "
                          "DR009 is not expected: a SYN-ACK from the VIP exists, on the wrong segment.",
    "rs-rp-filter": "strict rp_filter on rs1 drops the forwarded SYNs (they arrive on eth12, the route "
                    "back to the client is eth14): forwarded SYNs to rs1 never answered (DR009).",
    "port-mismatch": "rs1 listens on PORT+1, so it answers forwarded SYNs with a RST from VIP:PORT; no "
                     "handshake to rs1 completes (DR009).",
    "stale-arp": "the client's permanent ARP entry points the VIP at a MAC no host owns: its SYNs on br_e "
                 "go to 02:00:de:ad:be:ef, nothing reaches the director and nothing is forwarded (DR007).",
    "director-drops-invalid": "IPVS forwards the SYN, rs answers SYN-ACK, but the director's firewall "
                              "drops the client's ACK and request as conntrack-invalid: client packets "
                              "that reached the director without a forwarded copy (DR007).",
    "forwarding-loop": "rs1 routes VIP packets back to the director, which schedules them to rs1 "
                       "again: the same SYN crosses br_lvs over and over with a falling TTL (DR010) "
                       "and is never answered (DR009) until rs1 sends ICMP time exceeded. DR001 "
                       "still passes: every copy the director sends goes from its eth8 MAC to a real "
                       "server's MAC; the copies coming back are sent by rs1, not by the director.",
}


# Rules these captures also break, by a consequence the fault invites but does not force (which
# ARP answer the client keeps): verified on the captured traffic, explained in WHY.
CAPTURE_CONSEQUENCES = {"rs-answers-arp": ("DR012",), "rs-arp-announce": ("DR012",)}


@dataclass(frozen=True)
class SetSpec:
    name: str
    director: str
    real_servers: int
    faults: tuple[str, ...]
    requests: int              # load generator connections (after `curl` sequential ones)
    curl: int
    timeout: float
    fail: tuple[str, ...]
    description: str


def set_specs() -> dict[str, SetSpec]:
    specs = [
        SetSpec("seed-ipvs", "ipvs", 2, (), 4, 2, 3.0, (),
                "The seed experiment, healthy: client on br_e, IPVS director (VM) with the VIP on eth7 "
                "and DIP on eth8, two real servers with the VIP on lo/32, arp_ignore=1, arp_announce=2; "
                "curl and a few concurrent requests to VIP:8000. Every DR rule must pass."),
        SetSpec("seed-nft", "nft", 2, (), 4, 2, 3.0, (),
                "The seed experiment, healthy, with the nft director (netdev ingress MAC rewrite, flow "
                "hash, TTL unchanged). Every DR rule must pass."),
    ]
    for name, fault in FAULTS.items():
        hangs = name in ("rs-no-vip", "rs-vip-wide-mask", "rs-rp-filter", "reply-via-director",
                         "stale-arp", "director-drops-invalid", "forwarding-loop")
        specs.append(SetSpec(
            f"fault-{name}", "ipvs", 2, (name,),
            requests=2 if hangs else 4, curl=0 if hangs else 2, timeout=1.5 if hangs else 3.0,
            fail=tuple(sorted(set(fault.rules) | set(CAPTURE_CONSEQUENCES.get(name, ())))),
            description=f"Fault {name}: {fault.misconfiguration}. Symptom: {fault.symptom}. "
                        f"Rules that must fail: {WHY[name]}"))
    return {s.name: s for s in specs}


def expected_toml(spec: SetSpec) -> str:
    return (f"# rule ids that must fail on this capture set (written by scripts/make_captures.py)\n"
            f"fail = {json.dumps(list(spec.fail))}\n"          # JSON strings/arrays are valid TOML
            f"description = {json.dumps(spec.description)}\n")


def make_set(spec: SetSpec, out_root: Path, prefix: str) -> list[str]:
    """Capture one set; return disagreements between verify and expected (empty when none)."""
    out = out_root / spec.name
    if out.exists():
        shutil.rmtree(out)
    lab_down(prefix)
    state = lab_up(LabConfig(prefix=prefix, director=spec.director, real_servers=spec.real_servers,
                             faults=spec.faults))
    try:
        def traffic(s):
            results = []
            if spec.curl:
                results.append(run_curl(s, spec.curl, timeout=spec.timeout))
            # concurrency 1: with IPVS round robin, connection n goes to rs((n % 2) + 1)
            results.append(run_traffic(s, requests=spec.requests, concurrency=1, timeout=spec.timeout,
                                       fresh_arp=not spec.curl))
            return results
        run = capture_traffic(state, out, traffic, description=lab_description(state))
    finally:
        lab_down(prefix)
    (out / "expected.toml").write_text(expected_toml(spec))
    for r in run.traffic:
        print(f"  {r.tool}: {r.ok}/{r.requests} ok {r.per_server} {r.errors or ''}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"  {out}: {', '.join(f'{k} {v} packets' for k, v in run.points.items())}, {size // 1024} KiB")
    return check_set(spec, out)


def check_set(spec: SetSpec, out: Path) -> list[str]:
    """Compare what `verify` fails on a set with its expected.toml; disagreements (or why not run)."""
    try:
        report = verify_capture(out)
    except DrInspectError as exc:
        return [f"{spec.name}: verify could not run: {exc}"]
    if report is None:
        return []
    failed = sorted(r.id for r in report.rules if r.status == "fail" and r.severity == "error")
    expected = sorted(spec.fail)
    if failed != expected:
        return [f"{spec.name}: verify fails {failed or 'nothing'}, expected {expected or 'nothing'}"]
    print(f"  verify agrees: {', '.join(expected) or 'nothing'} fail(s)")
    return []


def main(argv: list[str] | None = None) -> int:
    specs = set_specs()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="*", help="set names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "captures")
    ap.add_argument("--prefix", default="drcap", help="lab prefix used while capturing")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="do not capture: rewrite expected.toml and compare verify with it")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(specs))
        return 0
    unknown = [s for s in args.sets if s not in specs]
    if unknown:
        print(f"unknown set(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    disagreements: list[str] = []
    try:
        for name in args.sets or list(specs):
            print(f"{name}:")
            if args.check:
                (args.out / name / "expected.toml").write_text(expected_toml(specs[name]))
                disagreements += check_set(specs[name], args.out / name)
            else:
                disagreements += make_set(specs[name], args.out, args.prefix)
    except DrInspectError as exc:
        print(f"make_captures: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        lab_down(args.prefix)
        return 130
    for d in disagreements:
        print(f"DISAGREEMENT {d}", file=sys.stderr)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
