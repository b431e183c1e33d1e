"""doctor: read the host configuration LVS-DR depends on and check it (HC000...HC020).

    snapshot.py     take_snapshot(netns, runner=...): the I/O edge, raw host state as a JSON dict
    textparse.py    busybox / text fallbacks parsed into `ip -j` shapes
    hoststate.py    pure readers: effective sysctls, routes, IPVS table, firewall rules
    checkbase.py    Target (VIP, port, hints), result making, fix commands
    rs_checks.py, director_checks.py, client_checks.py: the checks (pure)
    checks.py       run_checks(snapshot, role, target), guess_role
    catalogue.py    the HC ids and the DR rules each one explains
    run.py          doctor_live, doctor_capture_set, doctor_snapshots
    join.py         host_causes(snapshots, verify_report)
    render.py       table, JSON, JUnit, Markdown
"""

from dr_inspect.doctor.run import doctor_capture_set, doctor_live, doctor_snapshots
from dr_inspect.doctor.snapshot import read_snapshot, take_snapshot, write_snapshot

__all__ = ["take_snapshot", "read_snapshot", "write_snapshot", "doctor_live", "doctor_capture_set",
           "doctor_snapshots"]
