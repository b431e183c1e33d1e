"""Turn decoded numeric columns into the packets table (schema.py dtypes).

Addresses become Categoricals: the distinct values are found on the numbers (hash factorize),
and only those few are formatted as text.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from dr_inspect.decode import schema
from dr_inspect.decode.fields import Col, Fields
from dr_inspect.decode.frames import FrameIndex

# numpy type of each numeric pandas dtype of the schema
_INT_DTYPES = {dtype: np.dtype(code).type for dtype, code in schema.NUMPY_DTYPES.items()
               if dtype not in ("macs", "ip4")}


def _mac_text(v: int) -> str:
    return ":".join(f"{b:02x}" for b in int(v).to_bytes(6, "big"))


def _ip4_text(v: int) -> str:
    return str(ipaddress.IPv4Address(int(v)))


def _codes(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 where invalid) and the distinct values, for 1-D numeric values."""
    if valid.all():
        sub, uniq = pd.factorize(values)
        return sub.astype(np.int32, copy=False), np.asarray(uniq)
    codes = np.full(len(values), -1, dtype=np.int32)
    if valid.any():
        sub, uniq = pd.factorize(values[valid])
        codes[valid] = sub
        return codes, np.asarray(uniq)
    return codes, values[:0]


def _ip6_codes(rows16: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """rows16 holds the addresses of the valid rows only."""
    codes = np.full(len(valid), -1, dtype=np.int32)
    if not valid.any():
        return codes, []
    pairs = np.ascontiguousarray(rows16).view(">u8").reshape(-1, 2)
    hi, lo = pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)
    # Factorize the pair through a combined key of the two halves' codes.
    ch, uh = pd.factorize(hi)
    cl, ul = pd.factorize(lo)
    key = ch.astype(np.int64) * (len(ul) + 1) + cl
    ck, uk = pd.factorize(key)
    codes[valid] = ck
    texts = []
    for k in np.asarray(uk):
        h, l_ = uh[int(k) // (len(ul) + 1)], ul[int(k) % (len(ul) + 1)]
        texts.append(str(ipaddress.IPv6Address((int(h) << 64) | int(l_))))
    return codes, texts


def _categorical(codes: np.ndarray, texts: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=pd.Index(texts, dtype=object),
                                     validate=False)


def mac_column(col: Col) -> pd.Categorical:
    codes, uniq = _codes(col.values, col.valid)
    return _categorical(codes, [_mac_text(v) for v in uniq])


def ip_column(v4: Col | None, v6: Col | None) -> pd.Categorical:
    n = len(v4.valid) if v4 is not None else len(v6.valid)  # type: ignore[union-attr]
    codes = np.full(n, -1, dtype=np.int32)
    texts: list[str] = []
    if v4 is not None:
        c4, u4 = _codes(v4.values, v4.valid)
        texts = [_ip4_text(v) for v in u4]
        codes = c4
    if v6 is not None:
        c6, t6 = _ip6_codes(v6.values, v6.valid)
        codes = np.where(c6 >= 0, c6 + len(texts), codes).astype(np.int32)
        texts = texts + t6
    return _categorical(codes, texts)


def _nullable(col: Col, dtype: str) -> pd.api.extensions.ExtensionArray:
    values = col.values.astype(_INT_DTYPES[dtype], copy=False)
    if dtype == "boolean":
        return pd.arrays.BooleanArray(values, ~col.valid)
    return pd.arrays.IntegerArray(values, ~col.valid)


def build_table(fields: Fields, idx: FrameIndex, file: str, first_frame: int) -> pd.DataFrame:
    """The packets table. Consumes `fields` (its columns are dropped as they are converted, so
    the numeric and the final forms of all columns never coexist)."""
    n = fields.n
    cols: dict[str, object] = {}
    cols["file"] = _categorical(np.zeros(n, np.int8), [file])
    cols["frame"] = np.arange(first_frame, first_frame + n, dtype=np.int64)
    cols["ts_ns"] = idx.ts_ns.astype(np.int64, copy=False)
    for c in schema.SCHEMA:          # addresses: as the schema says the decoders hold them
        if c.held == ("macs",):
            cols[c.name] = mac_column(fields.macs.pop(c.name))
        elif "ip4" in c.held or "ip6" in c.held:
            cols[c.name] = ip_column(fields.ip4.pop(c.name) if "ip4" in c.held else None,
                                     fields.ip6.pop(c.name) if "ip6" in c.held else None)
    for name in list(fields.ints):
        cols[name] = _nullable(fields.ints.pop(name), schema.DTYPES[name])
    cols["interface"] = idx.interface.astype(np.int32, copy=False)
    cols["linktype"] = idx.linktype.astype(np.int32, copy=False)
    cols["caplen"] = idx.caplen.astype(np.int32)
    cols["wirelen"] = idx.wirelen.astype(np.int32)
    order = schema.COLUMNS + schema.EXTRA_COLUMNS
    return pd.DataFrame({c: cols[c] for c in order}, copy=False)


def concat_packets(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several packets tables (pieces of iter_decode, StreamDecoder feeds, several points) as one,
    keeping the address columns categorical (a plain pd.concat turns categoricals with different
    categories into object columns)."""
    tables = [t for t in tables if len(t)] or tables[:1]
    if not tables:
        return empty_table("")
    if len(tables) == 1:
        return tables[0].reset_index(drop=True)
    cols: dict[str, object] = {}
    for name in tables[0].columns:
        parts = [t[name] for t in tables]
        if isinstance(parts[0].dtype, pd.CategoricalDtype):
            cols[name] = union_categoricals([p.array for p in parts], ignore_order=True)
        else:
            cols[name] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(cols, copy=False)


def empty_table(file: str) -> pd.DataFrame:
    """A packets table with no rows (all columns, schema dtypes)."""
    from dr_inspect.decode.batches import decode_fields
    idx = FrameIndex.empty()
    return build_table(decode_fields(np.zeros(0, np.uint8), idx), idx, file, 1)
