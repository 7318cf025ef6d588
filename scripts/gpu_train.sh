#!/usr/bin/env bash
# One GPU window: train from pack/ on the lent machine; the checkpoint comes back in pieces.
#   here:    python scripts/gpu_pack.py --checkpoint runs/main/last.ckpt     # writes pack/, checks the travel size
#   device:  run(command="bash scripts/gpu_train.sh 9", carry=["pack"], timeout_s=600)
#   here:    python scripts/gpu_join.py <files_at> --out runs/gpu/last.ckpt
#            aecodec train --resume runs/gpu/last.ckpt --out runs/gpu ...
# Arguments after the minutes go to gpu_train.py (e.g. --lr 3e-4 --ema-decay 0.999).
# DEVICE=cpu runs the same here, the dry run: it checks what travels before training and
# what would come back after (BATCH=2 CROP=64 make it quick; PIECE_MB cuts smaller pieces).
set -euo pipefail
STARTED_AT=$(date +%s.%N)  # the window's clock starts before Python and torch load
MINUTES="${1:-9}"
OUT="${OUT:-out}"
DEVICE="${DEVICE:-cuda}"
PACK="${PACK:-pack}"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$OUT"
if [ "$DEVICE" = cpu ]; then python3 "$SCRIPTS/gpu_limits.py" travel --carry "$PACK"; fi
python3 "$SCRIPTS/gpu_train.py" --pack "$PACK" --out "$OUT" --minutes "$MINUTES" --device "$DEVICE" \
    --started-at "$STARTED_AT" --batch "${BATCH:-64}" --crop "${CROP:-256}" --compile "${COMPILE:-auto}" \
    ${PIECE_MB:+--piece-mb "$PIECE_MB"} "${@:2}" 2>&1 | tee "$OUT/train.log"
python3 "$SCRIPTS/gpu_limits.py" return "$OUT" --minutes "${TARGET_MINUTES:-9}"
