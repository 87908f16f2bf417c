#!/usr/bin/env bash
# COMPASS joint fine-tuning at q1–q4 at once on one lent GPU (the `device` tool's machine), from the
# zoo's committed COMPASS weights, over the zoo's BLs. Run from the repository root there, carrying:
#   .whl          compressai and pytorch-msssim wheels for that machine's Python (see its README)
#   .devdata      a crop bank: python -m bench.train crops --out .devdata/train
# Writes $OUT/compass-joint-q<Q>.pt (weights and run metadata, optimizer state left out, so each
# fits the transfer limits) and $OUT/train.log; export them here with
#   python -m bench.train compass --stage export --from compass-joint-q<Q>.pt
set -uo pipefail
MINUTES=${MINUTES:-7}      # training time per quality; all four run at once
BATCH=${BATCH:-16}
CROP=${CROP:-256}
LR=${LR:-2e-4}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.devdata}      # folder holding train/ (the crop bank)
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
# a fresh run folder per call unless RUNS names one to resume: on a still-warm machine an old
# folder would resume the previous call's runs instead of starting from today's zoo files
RUNS=${RUNS:-$(mktemp -d /tmp/compass-runs.XXXXXX)}
# hard wall-clock guard per quality: the training-time budget plus start-up, saves and slack; a run
# stopped by it still leaves its last per-minute checkpoint
LIMIT_S=$(awk -v m="$MINUTES" 'BEGIN { print int(m * 60 * 1.3 + 150) }')
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RUNS"
echo "runs in $RUNS, each stopped after $LIMIT_S s at the latest"

if [ -z "${SKIP_WHEELS:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
# bench.codecs / .datasets / .anchors live in top-level folders (pyproject's package-dir); on a
# machine where the project is not installed, links inside bench/ give the same package layout.
if ! "$PY" -c "import bench.codecs.compass" 2>/dev/null; then
    for part in codecs datasets anchors; do [ -e "bench/$part" ] || ln -s "../$part" "bench/$part"; done
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PY" - <<'EOF' || exit 1
import torch
from PIL import features
import bench.codecs.compass, bench.train.compass  # noqa: F401
assert features.check("webp"), "Pillow here cannot read the WebP crop bank"
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

pids=()
for Q in 1 2 3 4; do
    timeout -s INT -k 30 "$LIMIT_S" "$PY" -m bench.train compass --stage joint --quality "$Q" --init-from zoo --device "$DEVICE" \
        --batch "$BATCH" --crop "$CROP" --minutes "$MINUTES" --lr "$LR" --decay-factor 0.1 \
        --decay-fraction 0.25 --threads 3 --val-images 0 --save-minutes 1 \
        --data-root "$DATA" --out "$RUNS/q$Q" >"$RUNS/q$Q.log" 2>&1 &
    pids+=($!)
done
( sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv ) 2>/dev/null &
monitor=$!
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
{ pkill -P "$monitor"; kill "$monitor"; wait "$monitor"; } 2>/dev/null

for Q in 1 2 3 4; do
    echo "== q$Q"; tr '\r' '\n' <"$RUNS/q$Q.log" | grep -v '^$' | tail -n 4
    tr '\r' '\n' <"$RUNS/q$Q.log" | grep -v 'it/s\|s/it' >>"$OUT/train.log"
done
"$PY" - "$RUNS" "$OUT" <<'EOF'
import sys
from pathlib import Path
import torch
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
for q in (1, 2, 3, 4):
    path = runs / f"q{q}" / "last.pt"
    if not path.exists():
        print(f"q{q}: no checkpoint"); continue
    state = torch.load(path, map_location="cpu", weights_only=False)
    slim = {k: v for k, v in state.items() if k not in ("optimizer", "aux_optimizer")}
    torch.save(slim, out / f"compass-joint-q{q}.pt")
    print(f"q{q}: {state['step']} steps, {state['trained_seconds'] / 60:.1f} min")
EOF
[ $? -eq 0 ] || status=1
exit $status
