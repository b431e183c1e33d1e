"""Benchmark scripts and fast synthetic capture generators (not part of the installed package).

Run from the repository root: `python -m bench.gen --help`, `python -m bench.bench_decode`,
`python -m bench.bench_verify`.
"""
