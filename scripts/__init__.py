"""Studies, benchmarks and the tools behind them; run as `python scripts/X.py`, and
importable from the repository root as `scripts.X` (the tests import some of them)."""
