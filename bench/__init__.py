"""One-off measurement scripts, run from the repository root: `python -m bench.NAME` (README.md here)."""
