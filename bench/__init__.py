"""`make bench`: tasker's benchmark, run as `python -m bench.run` (see bench/run.py)."""
