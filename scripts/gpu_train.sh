#!/usr/bin/env bash
# One GPU window: train from pack/ on the lent machine; the checkpoint comes back in pieces.
#   here:    python -m scripts.gpu_pack --checkpoint runs/main/last.ckpt     # writes pack/, checks the travel size
#   device:  run(command="bash scripts/gpu_train.sh 9", carry=["pack"], timeout_s=600)
#   here:    python -m scripts.gpu_join <files_at> --out runs/gpu/last.ckpt
#            aecodec train --resume runs/gpu/last.ckpt --out runs/gpu ...
# Run it from the repository root (or with the root on PYTHONPATH): the device has torch but no
# aecodec installed, so `python -m scripts.…` imports the checkout's own aecodec from there.
# Arguments after the minutes go to scripts/gpu_train.py (e.g. --lr 3e-4 --ema-decay 0.999).
# DEVICE=cpu runs the same here, the dry run: it checks what travels before training and
# what would come back after (BATCH=2 CROP=64 make it quick; PIECE_MB cuts smaller pieces).
# PYTHON picks the interpreter: the device's python3 is the one that holds torch.
set -euo pipefail
STARTED_AT=$(date +%s.%N)  # the window's clock starts before Python and torch load
MINUTES="${1:-9}"
OUT="${OUT:-out}"
DEVICE="${DEVICE:-cuda}"
PACK="${PACK:-pack}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
if [ "$DEVICE" = cpu ]; then "$PYTHON" -m scripts.gpu_limits travel --carry "$PACK"; fi
"$PYTHON" -m scripts.gpu_train --pack "$PACK" --out "$OUT" --minutes "$MINUTES" --device "$DEVICE" \
    --started-at "$STARTED_AT" --batch "${BATCH:-64}" --crop "${CROP:-256}" --compile "${COMPILE:-auto}" \
    ${PIECE_MB:+--piece-mb "$PIECE_MB"} "${@:2}" 2>&1 | tee "$OUT/train.log"
"$PYTHON" -m scripts.gpu_limits return "$OUT" --minutes "${TARGET_MINUTES:-9}"
