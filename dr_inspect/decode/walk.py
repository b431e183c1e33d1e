"""Walk the record (or block) headers of a capture buffer: positions of every record, vectorised.

A capture file is a chain: each record header says how long the record is, so record k+1 can only
be found after reading record k. Walking that chain with one Python step per record is the slow
part of a naive decoder. Instead the buffer is cut into up to ~1000 lanes; each lane gets a guessed
record start (a format-specific heuristic, `sync`), and all lanes are walked in lockstep with numpy
(one vector step advances every lane by one record). Guesses are then verified: lane 0 starts at
the known start, and lane i+1's guess is right exactly when the verified lane i ends on it. A wrong
guess is simply re-walked from where its verified predecessor ended, so the result never depends on
the heuristic, only the speed does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# Status of one step at one position.
OK, INCOMPLETE, INVALID, STOP = 0, 1, 2, 3

# step(buf, positions) -> (next_positions, status): status OK means the record at that position is
# complete and valid and the next one starts at next_positions; anything else ends the chain there.
StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# sync(buf, chunk_starts, limit) -> guessed record starts (one per chunk start, >= it, < limit).
SyncFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]

LANE_BYTES = 256        # lanes = sqrt(span / LANE_BYTES)
MAX_LANES = 1024


@dataclass
class WalkResult:
    positions: np.ndarray   # int64 start offsets of every complete, valid record, in file order
    end: int                # where the chain stopped (== limit when it ran to the end cleanly)
    status: int             # OK (reached limit), INCOMPLETE, INVALID or STOP at `end`


def read_u32(buf: np.ndarray, pos: np.ndarray, little: bool) -> np.ndarray:
    """uint32 at each position (positions must have 4 bytes available), as int64."""
    n = len(buf)
    if n < 4:
        return np.zeros(len(pos), np.int64)
    # An unaligned strided view: element i is the uint32 starting at byte i. One fancy index.
    view = np.ndarray(shape=(n - 3,), dtype="<u4" if little else ">u4", buffer=buf, strides=(1,))
    return view[pos].astype(np.int64)


def read_u64(buf: np.ndarray, pos: np.ndarray, little: bool) -> np.ndarray:
    """uint64 at each position (positions must have 8 bytes available)."""
    n = len(buf)
    if n < 8:
        return np.zeros(len(pos), np.uint64)
    view = np.ndarray(shape=(n - 7,), dtype="<u8" if little else ">u8", buffer=buf, strides=(1,))
    return view[pos].astype(np.uint64)


def _walk_lanes(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, step: StepFn
                ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Walk every lane from starts[i] while its position is < ends[i]. Returns, per step, the
    record positions (-1 where a lane was inactive), and each lane's final position and status."""
    pos = starts.astype(np.int64).copy()
    status = np.full(len(pos), OK, dtype=np.int8)
    active = pos < ends
    steps: list[np.ndarray] = []
    while active.any():
        if active.all():
            # Fast path (most steps): every lane active; stays here while all records are good.
            nxt, st = step(buf, pos)
            if not st.any():
                steps.append(pos)
                pos = nxt
                active = pos < ends
                continue
        idx = np.flatnonzero(active)
        nxt, st = step(buf, pos[idx])
        good = st == OK
        rec = np.full(len(pos), -1, dtype=np.int64)
        rec[idx[good]] = pos[idx[good]]
        steps.append(rec)
        bad = idx[~good]
        status[bad] = st[~good]
        active[bad] = False
        gi = idx[good]
        pos[gi] = nxt[good]
        active[gi] = pos[gi] < ends[gi]
    return steps, pos, status


def walk(buf: np.ndarray, start: int, limit: int, step: StepFn, sync: SyncFn | None) -> WalkResult:
    """All records in buf[start:limit] (a record may extend past limit only if buf holds it)."""
    span = limit - start
    if span <= 0:
        return WalkResult(np.empty(0, np.int64), start, OK)
    # More lanes mean fewer lockstep steps but more sync work (a guess per lane): the balance
    # grows with the square root of the span.
    n_lanes = int(min(MAX_LANES, max(1, int(np.sqrt(span / LANE_BYTES)))))
    if n_lanes > 1 and sync is not None:
        chunk = np.linspace(start, limit, n_lanes + 1).astype(np.int64)[:-1]
        guesses = np.empty(n_lanes, dtype=np.int64)
        guesses[0] = start
        guesses[1:] = sync(buf, chunk[1:], limit)
        # A guess must stay strictly increasing for the lane boundaries to make sense.
        guesses = np.maximum.accumulate(guesses)
        keep = np.concatenate([[True], guesses[1:] > guesses[:-1]])
        guesses = guesses[keep]
    else:
        guesses = np.array([start], dtype=np.int64)
    lane_starts = guesses.copy()
    lane_ends = np.append(guesses[1:], limit).astype(np.int64)
    n = len(lane_starts)

    lane_records: list[np.ndarray | None] = [None] * n
    lane_final = np.zeros(n, dtype=np.int64)
    lane_status = np.zeros(n, dtype=np.int8)
    todo = np.arange(n)
    verified_upto = 0           # lanes [0, verified_upto) are verified and final
    while True:
        steps, final, status = _walk_lanes(buf, lane_starts[todo], lane_ends[todo], step)
        if steps:
            mat = np.stack(steps)
            for j, lane in enumerate(todo):
                col = mat[:, j]
                lane_records[lane] = col[col >= 0]
        else:
            for lane in todo:
                lane_records[lane] = np.empty(0, np.int64)
        lane_final[todo] = final
        lane_status[todo] = status
        # Verify in order: lane i is right when lane i-1 (verified) ended exactly at its start.
        i = verified_upto
        redo: list[int] = []
        stop_at: int | None = None
        while i < n:
            if lane_status[i] != OK:
                stop_at = i
                break
            if i + 1 == n:
                i += 1
                break
            if lane_final[i] == lane_starts[i + 1]:
                i += 1
                continue
            # Lane i+1 started at a wrong guess: re-walk it from where lane i really ended.
            lane_starts[i + 1] = lane_final[i]
            redo.append(i + 1)
            i += 1
            break
        if stop_at is not None:
            recs = [r for r in lane_records[: stop_at + 1] if r is not None]
            return WalkResult(_cat(recs), int(lane_final[stop_at]), int(lane_status[stop_at]))
        if not redo:
            recs = [r for r in lane_records if r is not None]
            return WalkResult(_cat(recs), int(lane_final[n - 1]), OK)
        verified_upto = redo[0]
        # Also re-walk every later lane whose start is not yet verified? Only the first unverified
        # one depends on this pass; later lanes keep their results and are checked next pass.
        todo = np.array(redo)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty(0, np.int64)
    return np.concatenate(parts).astype(np.int64, copy=False)
