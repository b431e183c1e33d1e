"""The table layer, one module per step: the combined packets table (combine), hops and clock
offsets (hops), the connections (connections, epochs), the rule tables (to_vip; forwards with
its copy search: copy_keys, copies, coalesced, coverage, spans, payload; replies; arp; flows; points)
and their column contract (columns).

The stage that runs them in order is dr_inspect.analysis.correlation. It reads the TCP view and
array helpers of dr_inspect.columnar and the learned topology (dr_inspect.topology.model).
"""
