"""Benchmarks: ``run.py`` (the hot read beside the seed), ``storm.py`` (reads during a
login storm)."""
