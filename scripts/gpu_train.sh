#!/usr/bin/env bash
# Train on a lent CUDA machine for a fixed budget; the checkpoint lands in $OUT/run.
#   device run (carry: pack, and runs/main if resuming):
#     bash scripts/gpu_train.sh 9            # minutes of training
#   then on this machine: aecodec train --resume <files_at>/run/last.ckpt
# DEVICE=cpu runs the same script here, to test it before spending GPU time.
set -euo pipefail
MINUTES="${1:-9}"
OUT="${OUT:-out}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT/run"
RESUME=()
if [ -f runs/main/last.ckpt ]; then RESUME=(--resume runs/main/last.ckpt); fi
python3 -m aecodec train --data pack/photos --device "$DEVICE" --minutes "$MINUTES" \
    --out "$OUT/run" --batch-size "${BATCH:-16}" --crop "${CROP:-256}" --checkpoint-minutes 2 "${RESUME[@]}"
python3 - "$OUT/run/last.ckpt" <<'PY'
import sys, torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
print(f"checkpoint step {ckpt['step']}, {ckpt['pixels_seen'] / 1e9:.2f} Gpx seen")
PY
