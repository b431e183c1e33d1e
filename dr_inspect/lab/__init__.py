"""The LVS-DR lab: the seed's experiment in network namespaces, with the real kernel networking.

    from dr_inspect.lab import LabConfig, lab_up, lab_down, lab_status, run_traffic
    state = lab_up(LabConfig(prefix="dri", director="nft", real_servers=2))
    run_traffic(state, requests=10, concurrency=2)
    lab_down("dri")
"""

from dr_inspect.lab.build import lab_up
from dr_inspect.lab.faults import FAULTS, Fault
from dr_inspect.lab.plan import LabConfig
from dr_inspect.lab.state import LabHost, LabState
from dr_inspect.lab.teardown import lab_down, lab_inventory, lab_status
from dr_inspect.lab.traffic import TrafficResult, run_curl, run_traffic

__all__ = ["FAULTS", "Fault", "LabConfig", "LabHost", "LabState", "TrafficResult", "lab_down",
           "lab_inventory", "lab_status", "lab_up", "run_curl", "run_traffic"]
