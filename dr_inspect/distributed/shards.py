"""Decode one capture file into Parquet shards, and what the global steps need from it.

Runs on a worker: the file is decoded (decode_file, as the local engine does), its packets table
written in shards of at most SHARD_ROWS rows, and the small extracts returned: the non-TCP frames
(ARP/ND and the rest: the global tables), the TCP frames topology learning starts from (SYN,
SYN-ACK and RST, and the first frame of each (interface, src MAC, dst MAC)), and per interface
the frame count, time range and frames cut by snaplen.
"""

from __future__ import annotations

import copyreg
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from dr_inspect.decode.api import iter_decode
from dr_inspect.decode.parallel import _reduce_capture_error
from dr_inspect.decode.schema import DTYPES, RST, SYN
from dr_inspect.decode.stats import DecodedCapture, DecodeStats
from dr_inspect.distributed.adapter import decode_file, is_tcp
from dr_inspect.errors import CaptureError

SHARD_ROWS = 1_000_000
STREAM_BYTES = 1 << 30       # larger files are decoded in pieces (bounded memory)

# A CaptureError (in a result or in DecodeStats.error) crosses to the client whole: the default
# exception pickling would call CaptureError(message).
copyreg.pickle(CaptureError, _reduce_capture_error)


@dataclass
class InterfaceInfo:
    """Per pcapng interface id (0 for classic pcap) of one file."""

    rows: int
    first_ts: int
    last_ts: int
    truncated: int


@dataclass
class DecodedFile:
    """What decoding one file gave: its shards and the small extracts (frame numbers as in the
    file: the point's offset is added later)."""

    stats: DecodeStats | None
    error: CaptureError | None = None
    shards: list[str] = field(default_factory=list)
    shard_offsets: list[int] = field(default_factory=list)   # frames of the file before each
    interfaces: dict[int, InterfaceInfo] = field(default_factory=dict)
    extract: pd.DataFrame | None = None
    src_macs: set[str] = field(default_factory=set)


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Parquet (a .parquet path; dictionary-encoded text, lz4: ~4x faster to write than the
    defaults) or Arrow IPC (.arrow: the buckets' pieces, written once and read twice)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if path.suffix == ".arrow":
        feather.write_feather(table, path, compression="uncompressed")
        return
    text = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    pq.write_table(table, path, compression="lz4", use_dictionary=text, write_statistics=False)


def object_categories(values) -> pd.Categorical:
    """A text column as a Categorical of object (str) categories, as decoded tables hold them
    (pandas infers its own str dtype for categories built or unioned from strings)."""
    cat = values if isinstance(values, pd.Categorical) else pd.Categorical(
        pd.Series(values).astype(object).where(pd.Series(values).notna(), None))
    if cat.categories.dtype == object:
        return cat
    categories = pd.Index(np.asarray(cat.categories, dtype=object), dtype=object)
    return pd.Categorical.from_codes(cat.codes, categories=categories, validate=False)


def _union(parts: list[pd.Categorical]) -> pd.Categorical:
    """The parts one after the other over the union of their categories (in order of first
    appearance); each part's codes are mapped through a small table, not recoded by value."""
    first = parts[0].categories
    if all(p.categories.equals(first) for p in parts[1:]):
        categories = first
    else:
        categories = pd.Index(pd.unique(np.concatenate(
            [np.asarray(p.categories, dtype=object) for p in parts])), dtype=object)
    codes = [np.append(categories.get_indexer(p.categories), -1)[p.codes] for p in parts]
    return pd.Categorical.from_codes(np.concatenate(codes), categories=categories,
                                     validate=False)


def concat_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of tables of one kind, text columns kept Categoricals of object categories."""
    parts = [p for p in parts if len(p)] or parts[:1]
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    cols = {}
    for c in parts[0].columns:
        series = [p[c] for p in parts]
        if any(isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object for s in series):
            cols[c] = _union([object_categories(s.array if isinstance(
                s.dtype, pd.CategoricalDtype) else s) for s in series])
        else:
            cols[c] = pd.concat(series, ignore_index=True).array
    return pd.DataFrame(cols, copy=False)


def read_table(path: str | Path, packets: bool = True) -> pd.DataFrame:
    """A table as written, text as Categoricals of object categories. packets: a packets table
    (shard), every column with its schema dtype (a column without any value comes back as plain
    nulls); else a rule table."""
    path = Path(path)
    df = (feather.read_table(path) if path.suffix == ".arrow" else pq.read_table(path)).to_pandas()
    for col in df.columns:
        s = df[col]
        want = DTYPES.get(col) if packets else None
        if want == "category" or isinstance(s.dtype, pd.CategoricalDtype) or (
                want is None and isinstance(s.dtype, pd.StringDtype)):
            df[col] = object_categories(s.array if isinstance(s.dtype, pd.CategoricalDtype)
                                        else s)
        elif want is not None and str(s.dtype) != want:
            df[col] = s.astype(want)
    return df


def _learning_rows(df: pd.DataFrame, tcp: np.ndarray) -> np.ndarray:
    """Rows topology learning reads: every non-TCP frame, TCP SYN/SYN-ACK/RST, and the first TCP
    frame of each (interface, src MAC, dst MAC)."""
    flags = df["tcp_flags"].to_numpy(dtype=np.int64, na_value=0)
    keep = ~tcp | (tcp & ((flags & (SYN | RST)) != 0))
    at = np.flatnonzero(tcp)
    if len(at):
        key = pd.DataFrame({"i": df["interface"].to_numpy()[at],
                            "s": df["src_mac"].cat.codes.to_numpy()[at],
                            "d": df["dst_mac"].cat.codes.to_numpy()[at],
                            "t": df["ts_ns"].to_numpy()[at], "row": at})
        first = key.sort_values("t", kind="stable").drop_duplicates(["i", "s", "d"])["row"]
        keep[first.to_numpy()] = True
    return np.flatnonzero(keep)


def _present_macs(s: pd.Series) -> set[str]:
    codes = s.cat.codes.to_numpy()
    used = np.unique(codes)
    cats = np.asarray(s.cat.categories, dtype=object)
    return {"" if c < 0 else str(cats[c]) for c in used.tolist()}


def add_interface(out: DecodedFile, iid: int, info: InterfaceInfo) -> None:
    """One more part's frames of interface iid into out's."""
    was = out.interfaces.get(iid)
    out.interfaces[iid] = info if was is None else InterfaceInfo(
        rows=was.rows + info.rows, first_ts=min(was.first_ts, info.first_ts),
        last_ts=max(was.last_ts, info.last_ts), truncated=was.truncated + info.truncated)


def _add_piece(out: DecodedFile, df: pd.DataFrame, extracts: list[pd.DataFrame]) -> None:
    """One decoded piece's interface infos, extract and source MACs into out."""
    iface = df["interface"].to_numpy()
    ts = df["ts_ns"].to_numpy(dtype=np.int64)
    cut = df["caplen"].to_numpy() < df["wirelen"].to_numpy()
    for i in np.unique(iface).tolist():
        mine = iface == i
        add_interface(out, int(i), InterfaceInfo(
            rows=int(mine.sum()), first_ts=int(ts[mine].min()), last_ts=int(ts[mine].max()),
            truncated=int((cut & mine).sum())))
    extracts.append(df.iloc[_learning_rows(df, is_tcp(df))])
    out.src_macs |= _present_macs(df["src_mac"])


def _pieces(path: Path, label: str) -> Iterator[DecodedCapture]:
    """The file decoded whole (up to STREAM_BYTES) or in pieces of SHARD_ROWS frames read in
    bounded blocks (iter_decode: the same table and stats, ~2x slower)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0                  # decode_file reports why
    if size <= STREAM_BYTES:
        yield decode_file(path, point=label)
        return
    yield from iter_decode(path, chunk_frames=SHARD_ROWS, point=label)


def write_pieces(pieces: Iterator[DecodedCapture], out_dir: str, prefix: str) -> DecodedFile:
    """The decoded pieces of one file (or byte range) as out_dir/<prefix>-<k>.parquet shards of
    SHARD_ROWS frames at most, with the extracts."""
    out = DecodedFile(stats=None)
    extracts: list[pd.DataFrame] = []
    k = 0
    try:
        for piece in pieces:
            df = piece.packets
            out.stats = piece.stats         # cumulative: the last piece's cover the file
            for start in range(0, len(df), SHARD_ROWS):
                shard = Path(out_dir) / f"{prefix}-{k:04d}.parquet"
                write_table(df.iloc[start:start + SHARD_ROWS], shard)
                out.shards.append(str(shard))
                out.shard_offsets.append(0)
                k += 1
            if len(df):
                _add_piece(out, df, extracts)
    except CaptureError as exc:
        return DecodedFile(stats=None, error=exc)
    if extracts:
        out.extract = learning_extract(extracts)
    return out


def learning_extract(extracts: list[pd.DataFrame]) -> pd.DataFrame:
    """The extracts of a file's pieces as the file's: of the first frames per MAC pair of each
    piece only the file's first stays."""
    ex = concat_rows(extracts)
    return ex.iloc[_learning_rows(ex, is_tcp(ex))].reset_index(drop=True)


def decode_to_shards(path: str, label: str, out_dir: str, file_no: int) -> DecodedFile:
    """Decode `path` (point `label`) into out_dir/f<file_no>-<k>.parquet."""
    return write_pieces(_pieces(Path(path), label), out_dir, f"f{file_no:05d}")
