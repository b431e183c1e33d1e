"""dr-inspect: live traffic analyser and verifier for LVS Direct Routing."""

__version__ = "0.1.0"
