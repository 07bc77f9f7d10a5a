"""Benchmarks (`make bench`). Each module measures one target and returns a dict of figures.

Run all: `python -m bench`; one: `python -m bench import`. Results are printed and written to
`.bench/results.json`. Performance targets live here, not in timed unit tests.
"""
