"""The Examples section of every command's --help, kept in one place so each command module stays
a thin parse-call-render function. The lab examples use the lab's default prefix (dri) and VIP."""

from __future__ import annotations

import click

# command path (as typed after `dr-inspect`) -> example command lines, each with a short comment
EXAMPLES: dict[str, list[str]] = {
    "decode": [
        "dr-inspect decode captures/seed-ipvs/br_e.pcap",
        "dr-inspect decode --format csv -o frames.csv trace.pcapng.gz",
    ],
    "verify": [
        "dr-inspect verify captures/seed-ipvs                  # a capture set folder",
        "dr-inspect verify br_e.pcap br_lvs.pcap --vip 192.168.7.33:8000",
        "dr-inspect verify SET --format json -o report.json     # for scripts and `diff`",
        "dr-inspect verify SET --evidence-pcap why.pcapng      # open it in Wireshark",
        "dr-inspect verify SET --client 10.1.0.0/16 --rs rs2   # only these connections",
        "dr-inspect verify SET --since 30s --until 2m          # started 30 s..2 min in",
    ],
    "ladder": [
        "dr-inspect ladder captures/fault-port-mismatch --list  # every connection, its verdict",
        "dr-inspect ladder captures/fault-port-mismatch --flow 2",
        "dr-inspect ladder SET --client 192.168.7.2:52094 --svg flow.svg",
        "dr-inspect ladder SET --list --rs rs1 --since 2026-12-03T16:40:00Z",
    ],
    "report": [
        "dr-inspect report captures/fault-rs-answers-arp --html report.html",
        "dr-inspect report SET --vip 192.168.7.33:8000 --html vip.html",
    ],
    "diff": [
        "dr-inspect verify SET-BEFORE --format json -o old.json",
        "dr-inspect verify SET-AFTER --format json -o new.json",
        "dr-inspect diff old.json new.json          # exit 1 when something got worse",
    ],
    "lab": [
        "sudo dr-inspect lab demo                   # up, capture, traffic, verify, down",
        "sudo dr-inspect lab up --real-servers 2 --fault rs-answers-arp",
        "sudo dr-inspect lab exec director ipvsadm -Ln --stats",
        "sudo dr-inspect lab down",
    ],
    "lab up": [
        "sudo dr-inspect lab up                     # IPVS director, one real server",
        "sudo dr-inspect lab up --director nft --real-servers 3",
        "sudo dr-inspect lab up --real-servers 2 --fault rs-answers-arp@rs2",
    ],
    "lab down": [
        "sudo dr-inspect lab down",
        "sudo dr-inspect lab down --prefix t1",
    ],
    "lab status": [
        "sudo dr-inspect lab status",
        "sudo dr-inspect lab status --json | jq .state.workdir",
    ],
    "lab traffic": [
        "sudo dr-inspect lab traffic --requests 20 --concurrency 4",
        "sudo dr-inspect lab traffic --curl 3 --requests 0",
    ],
    "lab demo": [
        "sudo dr-inspect lab demo                   # a new lab-demo-DATE-TIME folder per run",
        "sudo dr-inspect lab demo --fault port-mismatch --real-servers 2 --out demo1",
    ],
    "lab faults": [
        "dr-inspect lab faults",
    ],
    "lab exec": [
        "sudo dr-inspect lab exec director ipvsadm -Ln --stats",
        "sudo dr-inspect lab exec rs1 ip -br addr",
        "sudo dr-inspect lab exec client curl -s http://192.168.7.33:8000/",
    ],
    "capture": [
        "sudo dr-inspect capture --bridge br_e --bridge br_lvs --duration 10",
        "sudo dr-inspect capture --netns dri-sw --bridge br_e --bridge br_lvs --out set1",
        "dr-inspect capture --inventory farm.toml --duration 2m --out set1   # over ssh",
        "dr-inspect capture --host rs1=root@10.0.0.7:2222 --iface rs1:eth0 --duration 30s",
    ],
    "watch": [
        "sudo dr-inspect watch --netns dri-sw --bridge br_e --bridge br_lvs",
        "sudo dr-inspect watch --bridge eth0 --role eth0=both --metrics 127.0.0.1:9469",
    ],
    "doctor": [
        "dr-inspect doctor captures/fault-rs-answers-arp      # every snapshot of a capture set",
        "sudo dr-inspect doctor --role realserver --vip 192.168.7.33:8000",
        "sudo dr-inspect doctor --role client --vip 192.168.7.33:8000 --netns dri-client",
        "dr-inspect doctor --list-checks",
        "dr-inspect doctor --vip 10.0.0.100:80 --inventory farm.toml     # the hosts, over ssh",
    ],
}


def examples_epilog(path: str) -> str | None:
    """The Examples section for the command at `path` ("verify", "lab up"), as a click epilog
    (\\b keeps click from rewrapping the lines)."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def attach_examples(command: click.Command, path: str) -> click.Command:
    """Give `command` (and, for a group, its subcommands) their Examples section."""
    if command.epilog is None:
        command.epilog = examples_epilog(path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            attach_examples(sub, f"{path} {name}")
    return command
