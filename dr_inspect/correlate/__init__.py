"""The table layer: the combined packets table (combine), packet keys and the TCP view (keys),
hops (the same packet seen twice), the rule tables (tables, points) and their column contract.

The stage that runs them in order is dr_inspect.analysis.correlation. This package's own module
imports nothing, so that dr_inspect.topology can use its key helpers without a cycle.
"""
