#!/usr/bin/env bash
# One training run on a lent GPU machine, as one `run` call (training/README.md, "On a lent GPU"):
# unpack what training/device_transfer.py packed, train for at most TRAIN_SECONDS (then SIGTERM:
# the run checkpoints and stops), record the weights, and export them into $OUT.
#     bash training/device_train.sh --init qa/reading/reader.safetensors --train ../shared/data/... \
#         --holdout ../shared/data/squad/squad2-dev-a.json --epochs 2 --keep-epochs ...
# The arguments are train_reader.py's for a new run, data named as packed; --out, --base and
# --device are set here. TRAIN_SECONDS covers building the windows, training and scoring the
# held-out files; unpacking, recording and exporting take about 1.5 minutes more: keep
# TRAIN_SECONDS that much under the call's limit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=${WORK:-/tmp/qa-device}
DEVICE=${DEVICE:-cuda}
TRAIN_SECONDS=${TRAIN_SECONDS:-420}
OUT=${OUT:?"set OUT: the folder whose files come back"}
PACK=${PACK:-$REPO/training/runs/device-pack}

"$PYTHON" "$REPO/training/device_transfer.py" unpack "$PACK" "$WORK"
cd "$WORK/work"
status=0
timeout -s TERM "$TRAIN_SECONDS" "$PYTHON" "$REPO/training/train_reader.py" --out "$WORK/run" \
    --base "$WORK/base" --device "$DEVICE" --checkpoint-minutes 1000 "$@" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then
    echo "train_reader.py failed (exit $status)" >&2
    exit "$status"
fi
if [ ! -f "$WORK/run/run.json" ] && [ -f "$WORK/run/checkpoint.pt" ]; then  # stopped by the time limit
    "$PYTHON" "$REPO/training/train_reader.py" --resume "$WORK/run" --record-checkpoint
fi
cat "$WORK/run/progress.txt" 2>/dev/null || true
"$PYTHON" "$REPO/training/device_transfer.py" export "$WORK/run" "$WORK/base" "$OUT"
