"""Every file of the tcpdump test corpus either decodes or raises CaptureError naming the file and
a byte offset; nothing else (no traceback, no hang, no huge allocation)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from conftest import CORPUS
from dr_inspect.decode import decode_file, schema
from dr_inspect.errors import CaptureError

FILES = sorted(p.name for p in CORPUS.iterdir()) if CORPUS.is_dir() else []


@pytest.mark.corpus
@pytest.mark.parametrize("name", FILES or ["<corpus missing>"])
def test_corpus_file(corpus_dir: Path, name: str) -> None:
    path = corpus_dir / name
    try:
        got = decode_file(path)
    except CaptureError as exc:
        assert exc.file == str(path)
        assert exc.offset is not None and 0 <= exc.offset <= path.stat().st_size
        assert exc.reason and "\n" not in str(exc)
        return
    df = got.packets
    assert list(df.columns) == schema.COLUMNS + schema.EXTRA_COLUMNS
    assert len(df) == got.stats.frames_read
    assert got.stats.frames_decoded == got.stats.frames_read - sum(got.stats.undecodable.values())
    assert df["frame"].tolist() == list(range(1, len(df) + 1))
    assert got.stats.format in ("pcap", "pcapng")
    if got.stats.error is not None:
        assert got.stats.error.offset is not None and "\n" not in str(got.stats.error)
    # The payload length never exceeds what the frame could carry on the wire.
    ok = df["payload_len"].notna()
    assert (df["payload_len"][ok] <= df["wirelen"][ok]).all()


@pytest.mark.corpus
def test_corpus_summary(corpus_dir: Path) -> None:
    """Most of the corpus decodes; memory stays bounded across the whole run."""
    decoded = errors = frames = 0
    for path in sorted(corpus_dir.iterdir()):
        try:
            got = decode_file(path)
        except CaptureError:
            errors += 1
            continue
        decoded += 1
        frames += got.stats.frames_read
    assert decoded >= 800 and frames > 10_000
    assert errors >= 1            # the LICENSE file is not a capture
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 1024 * 1024   # KiB
