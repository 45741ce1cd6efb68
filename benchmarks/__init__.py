"""Benchmarks, one question each. Run them from the repository root as modules,
`.venv/bin/python -m benchmarks.<name>` (README.md, Benchmarks); each writes its report to
benchmarks/results/ (`--out` elsewhere) and `--help` says what it measures."""
