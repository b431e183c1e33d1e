"""Analysis: everything one verification computed (the report and the tables behind it), what
the HTML report and the ladder view read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from dr_inspect.model import PointSummary, Topology, VerifyReport

if TYPE_CHECKING:   # for the annotation only: the result does not need the stage loaded
    from dr_inspect.analysis.correlation import Correlation


@dataclass
class Analysis:
    """Everything verify computed, for the HTML report and the ladder."""

    packets: pd.DataFrame                 # all points, with `point` and clock-adjusted `ts`
    topology: Topology
    hops: pd.DataFrame
    flows: pd.DataFrame
    tables: dict[str, pd.DataFrame]       # to_vip, forwards, replies, arp, flows, points
    points: list[PointSummary]
    report: VerifyReport
    correlation: Correlation | None = None
    errors: list[str] = field(default_factory=list)
