"""hfcls-bench's harnesses: throughput against the examples' baseline, and the peers' whole training runs.

Tools, not the library: only hfcls-bench (hfcls.cli.bench) imports them.
"""
