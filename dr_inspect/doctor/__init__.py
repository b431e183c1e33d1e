"""doctor: read the host configuration LVS-DR depends on and check it (HC001...).

snapshot.py collects (I/O); checks.py judges (pure); join.py ties host checks to failing DR rules.
"""

from dr_inspect.doctor.snapshot import read_snapshot, take_snapshot, write_snapshot

__all__ = ["take_snapshot", "read_snapshot", "write_snapshot"]
