"""The rule tables' column contract: each table's columns and kinds (the rule loader validates
expressions against them; scripts/make_column_docs.py documents them), and the one way every
table is finished to it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.text import as_text

# Column names and kinds per table: the rule loader validates expressions against these.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "to_vip": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "flow_id": "int",
        "five_tuple": "str", "src_ip": "str", "dst_ip": "str", "src_port": "int", "dst_port": "int",
        "seq": "int", "ack": "int", "tcp_flags": "int", "ip_id": "int", "payload_len": "int",
        "ttl": "int", "src_mac": "str", "dst_mac": "str", "leg": "str", "dst_is_rs": "bool",
        "src_is_director": "bool", "dst_is_director": "bool", "real_server": "str",
    },
    "forwards": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "flow_id": "int",
        "five_tuple": "str", "vip": "str", "src_ip": "str", "dst_ip": "str", "src_port": "int",
        "dst_port": "int", "seq": "int", "ack": "int", "tcp_flags": "int", "syn": "bool",
        "ip_id": "int", "payload_len": "int", "ttl": "int", "src_mac": "str", "dst_mac": "str",
        "has_copy": "bool", "copy_point": "str", "copy_frame": "int", "copy_ts_ns": "int",
        "copy_src_mac": "str", "copy_dst_mac": "str", "copy_src_ip": "str", "copy_dst_ip": "str",
        "copy_src_port": "int", "copy_dst_port": "int", "copy_ack": "int", "copy_tcp_flags": "int",
        "copy_ip_id": "int", "copy_payload_len": "int", "copy_ttl": "int", "ttl_drop": "int",
        "flags_kept": "bool",
        "delay_us": "float", "copy_dst_is_rs": "bool", "copy_src_is_director": "bool",
        "real_server": "str", "coalesced": "bool", "copies": "int", "copy_ttls": "int",
        "likely_cause": "str", "in_capture_span": "bool", "payload_changed": "bool",
    },
    "replies": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "flow_id": "int",
        "five_tuple": "str", "vip": "str", "src_ip": "str", "dst_ip": "str", "src_port": "int",
        "dst_port": "int", "seq": "int", "ack": "int", "tcp_flags": "int", "ttl": "int",
        "ip_id": "int", "payload_len": "int",
        "src_mac": "str", "dst_mac": "str", "from_vip": "bool", "from_director": "bool",
        "to_director": "bool", "real_server": "str",
    },
    "arp": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "five_tuple": "str",
        "seq": "int", "kind": "str", "sender_ip": "str", "target_ip": "str", "about_vip": "bool",
        "vip": "str", "claimer_mac": "str", "src_mac": "str", "is_director": "bool",
        "is_rs": "bool", "real_server": "str", "claimer": "str", "changed": "bool",
        "failover": "bool", "director_changes": "int", "match_filter": "str", "likely_cause": "str",
    },
    "flows": {
        "point": "str", "frame": "int", "ts_ns": "int", "flow_id": "int", "five_tuple": "str",
        "seq": "int", "client_ip": "str", "client_port": "int", "vip": "str", "real_server": "str",
        "rs_count": "int", "syn_seen": "bool", "syn_forwarded": "bool", "synack_seen": "bool",
        "syn_retransmits": "int", "rst_from_vip": "bool", "refused": "bool", "packets_in": "int",
        "packets_out": "int", "forward_delay_us": "float", "response_us": "float",
        "likely_cause": "str", "in_capture_span": "bool",
    },
    "points": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "five_tuple": "str",
        "seq": "int", "file": "str", "frames": "int", "decoded": "int", "empty_expected": "bool",
        "error": "str",
        "kernel_drops": "int", "truncated": "int", "overlaps": "bool", "clock_offset_us": "float",
        "early_copies": "int", "problem": "str",
    },
}


def empty_table(table: str) -> pd.DataFrame:
    kinds = {"str": object, "int": np.int64, "float": np.float64, "bool": bool}
    return pd.DataFrame({c: pd.Series([], dtype=kinds[k]) for c, k in TABLE_COLUMNS[table].items()})


def finish_table(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The table's columns in contract order: text as a Categorical (or object) without missing
    values, integers as numpy integers (narrow ones stay narrow: the engine widens what a rule
    reads), bools and floats as numpy."""
    if len(df) == 0:
        return empty_table(table)
    out = df[list(TABLE_COLUMNS[table])].reset_index(drop=True)
    for col, kind in TABLE_COLUMNS[table].items():
        s = out[col]
        if kind == "str":
            if isinstance(s.dtype, pd.CategoricalDtype):
                if (s.cat.codes.to_numpy() < 0).any():
                    out[col] = as_text(s)
            elif s.dtype != object:
                out[col] = as_text(s)
        elif kind == "int" and not (isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu"):
            out[col] = s.to_numpy(dtype=np.int64, na_value=-1)
    return out
