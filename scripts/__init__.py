"""The GPU-window scripts, run from the repository root: `python -m scripts.NAME` (gpu_train.sh does)."""
