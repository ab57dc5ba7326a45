"""Benchmarks (not timed tests): `python -m bench --help`. Results and how they were measured: RESULTS.md."""
