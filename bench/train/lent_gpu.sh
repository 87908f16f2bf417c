#!/usr/bin/env bash
# Fine-tune bench's learned codecs at q1–q4 at once on one lent GPU (the `device` tool's machine),
# from the zoo's committed weights. Run from the repository root there, carrying:
#   .whl          compressai and pytorch-msssim wheels for that machine's Python (see its README)
#   .devdata      a crop bank: python -m bench.train crops --out .devdata/train
# Stages, in order (each one's four runs share the GPU):
#   MS_MINUTES>0  mean-scale (the single-layer codec and COMPASS's BL), exported into a scratch copy of
#                 the zoo on that machine ($OUT/mean-scale-q<Q>-<sha8>.pth.tar); COMPASS then refits
#                 LIFF/RC onto these BLs (--rebase-bl), since the plugin only runs them over their own BL
#   MINUTES>0     COMPASS joint stage over the (new or committed) BLs
# COMPASS results come back as $OUT/compass-joint-q<Q>.pt (weights and run metadata, no optimizer
# state, so they fit the transfer limits; export here with
#   python -m bench.train compass --stage export --from compass-joint-q<Q>.pt)
# or, with EXPORT=1 (needed after a mean-scale stage: the export checks the BL files), as zoo files
# $OUT/compass-q<Q>-<sha8>.pth.tar. Copy returned zoo files into bench/weights/ (replacing that
# quality's file). COMPASS_ARGS adds options to the joint runs (e.g. "--el1-range 0.25,0.75
# --el2-range 0.75,1 --freeze-rc", as in the committed files' last CPU stage). $OUT/train.log has
# every run's log. A 10-minute call fits e.g. MS_MINUTES=3.5 MINUTES=4 (about 90 s of start-up,
# exports and saves on top).
set -uo pipefail
MINUTES=${MINUTES:-7}      # COMPASS training time per quality; all four run at once (0: skip)
MS_MINUTES=${MS_MINUTES:-0} # mean-scale training time per quality (0: skip, keep the committed BLs)
MS_LR=${MS_LR:-2e-4}
EXPORT=${EXPORT:-0}
BATCH=${BATCH:-16}
CROP=${CROP:-256}
LR=${LR:-2e-4}
PRECISION=${PRECISION:-bf16}  # transforms in bf16 on the GPU's tensor cores (fp32: as before this option)
read -r -a compass_extra <<<"${COMPASS_ARGS:-}"
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.devdata}      # folder holding train/ (the crop bank)
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
# a fresh run folder per call unless RUNS names one to resume: on a still-warm machine an old
# folder would resume the previous call's runs instead of starting from today's zoo files
RUNS=${RUNS:-$(mktemp -d /tmp/compass-runs.XXXXXX)}
# hard wall-clock guard per quality: the training-time budget plus start-up, saves and slack; a run
# stopped by it still leaves its last per-minute checkpoint
limit_s() { awk -v m="$1" 'BEGIN { print int(m * 60 * 1.3 + 150) }'; }
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RUNS"
echo "runs in $RUNS"

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
import bench.codecs.compass.train, bench.codecs.mean_scale.train  # noqa: F401  (both trainers import)
assert features.check("webp"), "Pillow here cannot read the WebP crop bank"
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

# the four runs of one stage in parallel; fails if any fails
run_four() {  # NAME LIMIT_S ARGS... (Q substituted for @Q@)
    local name=$1 limit=$2; shift 2
    local pids=() ok=0
    for Q in 1 2 3 4; do
        timeout -s INT -k 30 "$limit" "$PY" -m bench.train "${@//@Q@/$Q}" --out "$RUNS/$name-q$Q" \
            >"$RUNS/$name-q$Q.log" 2>&1 &
        pids+=($!)
    done
    ( sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv ) 2>/dev/null &
    local monitor=$!
    for pid in "${pids[@]}"; do wait "$pid" || ok=1; done
    { pkill -P "$monitor"; kill "$monitor"; wait "$monitor"; } 2>/dev/null
    for Q in 1 2 3 4; do
        echo "== $name q$Q"; tr '\r' '\n' <"$RUNS/$name-q$Q.log" | grep -v '^$' | tail -n 3
        tr '\r' '\n' <"$RUNS/$name-q$Q.log" | grep -v 'it/s\|s/it' | sed "s/^/[$name q$Q] /" >>"$OUT/train.log"
    done
    return $ok
}

status=0
common=(--device "$DEVICE" --batch "$BATCH" --crop "$CROP" --threads 3 --val-images 0 --save-minutes 1
        --precision "$PRECISION"
        --data-root "$DATA" --quality @Q@ --init-from zoo)
rebase=()
# a scratch zoo: exports (new BLs, new COMPASS files) replace the committed files there, never in the
# checkout's bench/weights, so running this script anywhere leaves the repository as it was
export BENCH_WEIGHTS="$RUNS/weights"
mkdir -p "$BENCH_WEIGHTS" && cp bench/weights/*.pth.tar "$BENCH_WEIGHTS"/
if awk -v m="$MS_MINUTES" 'BEGIN { exit !(m > 0) }'; then
    run_four ms "$(limit_s "$MS_MINUTES")" mean-scale "${common[@]}" --minutes "$MS_MINUTES" \
        --lr "$MS_LR" --decay-factor 0.1 --decay-fraction 0.2 || status=1
    for Q in 1 2 3 4; do
        if "$PY" -m bench.train export --checkpoint "$RUNS/ms-q$Q/last.pt" --quality "$Q" \
                --out-dir "$BENCH_WEIGHTS" >>"$OUT/train.log" 2>&1; then
            cp "$BENCH_WEIGHTS"/mean-scale-q"$Q"-*.pth.tar "$OUT"/
        else
            echo "mean-scale q$Q: export failed"; status=1
        fi
    done
    rebase=(--rebase-bl)
fi

if awk -v m="$MINUTES" 'BEGIN { exit !(m > 0) }'; then
    run_four compass "$(limit_s "$MINUTES")" compass --stage joint "${common[@]}" "${rebase[@]}" \
        --minutes "$MINUTES" --lr "$LR" --decay-factor 0.1 --decay-fraction 0.25 "${compass_extra[@]}" || status=1
    if [ "$EXPORT" = 1 ]; then
        for Q in 1 2 3 4; do
            "$PY" -m bench.train compass --stage export --from "$RUNS/compass-q$Q/last.pt" \
                >>"$OUT/train.log" 2>&1 && cp "$BENCH_WEIGHTS"/compass-q"$Q"-*.pth.tar "$OUT"/ \
                || { echo "compass q$Q: export failed"; status=1; }
        done
    else
        "$PY" - "$RUNS" "$OUT" <<'EOF' || status=1
import sys
from pathlib import Path
import torch
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
for q in (1, 2, 3, 4):
    path = runs / f"compass-q{q}" / "last.pt"
    if not path.exists():
        print(f"q{q}: no checkpoint"); continue
    state = torch.load(path, map_location="cpu", weights_only=True)
    slim = {k: v for k, v in state.items() if k not in ("optimizer", "aux_optimizer")}
    torch.save(slim, out / f"compass-joint-q{q}.pt")
    print(f"q{q}: {state['step']} steps, {state['trained_seconds'] / 60:.1f} min")
EOF
    fi
fi
ls -la "$OUT"
exit $status
