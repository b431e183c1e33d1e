"""Each packets-table column is declared once (decode/schema.py SCHEMA); the column lists, the
dtypes, the numpy decoder's output and the C kernel's X-macro must all agree with it."""

from __future__ import annotations

import re

import numpy as np

from conftest import ROOT, require
from dr_inspect.decode import native, schema
from dr_inspect.decode.batches import decode_fields
from dr_inspect.decode.frames import FrameIndex

C_SOURCE = ROOT / "dr_inspect" / "decode" / "_native.c"
KERNEL_FIELDS = {key: dtype for key, dtype in schema.DECODED_FIELDS.items() if key[0] != "ip6"}


def _x_macro_fields() -> dict[tuple[str, str], str]:
    """FIELD_LIST's X(id, group, name, dtype, C type) entries, read from the C source."""
    text = C_SOURCE.read_text()
    body = text[text.index("#define FIELD_LIST(X)"):text.index("#define AS_ENUM")]
    entries = re.findall(r'X\(\s*\w+\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*"(\w+)"\s*,\s*(\w+)\s*\)', body)
    sizes = {"uint8_t": 1, "uint16_t": 2, "uint32_t": 4, "uint64_t": 8, "int32_t": 4}
    for group, name, dtype, ctype in entries:
        assert np.dtype(dtype).itemsize == sizes[ctype], f"{name}: {dtype} is not a {ctype}"
    return {(group, name): dtype for group, name, dtype, _ in entries}


def test_column_lists_and_dtypes_come_from_the_schema():
    assert schema.COLUMNS + schema.EXTRA_COLUMNS == [c.name for c in schema.SCHEMA]
    assert list(schema.DTYPES) == [c.name for c in schema.SCHEMA]
    assert schema.DTYPES["ttl"] == "UInt8" and schema.DECODED_FIELDS[("ints", "ttl")] == "u1"


def test_the_c_x_macro_matches_the_schema():
    assert _x_macro_fields() == KERNEL_FIELDS


def test_the_built_kernel_exports_the_schema_fields():
    require(native.available(), "the decoder's C extension was not built")
    assert {(g, n): d for g, n, d in native.FIELDS} == KERNEL_FIELDS


def test_the_numpy_decoder_gives_exactly_the_schema_fields(monkeypatch):
    monkeypatch.setenv(native.ENV, "0")
    frame = np.frombuffer(bytes.fromhex(
        "020000000002" "020000000001" "0800"                        # Ethernet
        "45000028abcd40004006" "0000" "0a000001" "0a000002"        # IPv4, TTL 64, TCP
        "1f900050" "00000001" "00000000" "5002ffff00000000"), np.uint8)   # TCP SYN
    n = len(frame)
    idx = FrameIndex(np.array([0]), np.array([n]), np.array([n]), np.array([0]), np.array([0]),
                     np.array([1]))
    fields = decode_fields(frame.copy(), idx)
    got = {(group, name): col.values.dtype.str[1:] if group != "ip6" else "16u1"
           for group in ("ints", "macs", "ip4", "ip6") for name, col in getattr(fields, group).items()}
    assert got == schema.DECODED_FIELDS
    assert int(fields.ints["ttl"].values[0]) == 64 and fields.ints["ttl"].valid[0]
