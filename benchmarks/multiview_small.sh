#!/usr/bin/env bash
# Multi-view at a small scale on a tree in MVCNN's on-disk layout: per-view backbones (the paper's design) vs
# --shared-backbone vs the MVCNN baseline, and per-view backbones at the old head step (--head-lr-scale 1).
# Numbers and reading: docs/multiview.md#small-data. One thread; a few minutes per run on a 2-core machine.
# usage: PYTHONPATH=. bash benchmarks/multiview_small.sh [ARCH] [EPOCHS] [BATCH]
#        (env: DATA, RUNS, PY; VARIANTS, a subset of "perview shared mvcnn perview_hlr1", to run some apart)
set -euo pipefail
ARCH=${1:-alexnet}
EPOCHS=${2:-12}
BATCH=${3:-8}
DATA=${DATA:-/tmp/nv-multiview-small/data}
RUNS=${RUNS:-/tmp/nv-multiview-small/runs}
PY=${PY:-python}
export OMP_NUM_THREADS=1
if [ ! -d "$DATA" ]; then  # 6 classes x (10 train + 4 test) objects x 12 views, 64 px PNGs
  $PY -m nvcli data make views --out "$DATA" --image-size 64 -D train_per_class=10 -D val_per_class=4
fi
# -D: `nv multiview` dropped --data-dir and --image-size (issue 19); the -D form reaches the loader either way.
common=(--data modelnet40 -D "data_dir=$DATA" -D image_size=64 --arch "$ARCH" --reduce mean --epochs "$EPOCHS"
        --batch-size "$BATCH" --threads 1 --runs-dir "$RUNS" --force -f csv)
for variant in ${VARIANTS:-perview shared mvcnn perview_hlr1}; do
  case $variant in
    perview) extra=() ;;
    shared) extra=(--shared-backbone) ;;
    mvcnn) extra=(--baseline) ;;
    perview_hlr1) extra=(--head-lr-scale 1) ;;
  esac
  $PY -m nvcli multiview "${common[@]}" "${extra[@]}" --name "${ARCH}_${variant}" > /dev/null
  echo "== ${ARCH}_${variant}: $($PY -c 'import json, sys; c = json.load(open(sys.argv[1]))
print("units", c["units"], "head_lr_scale", c["train"]["head_lr_scale"])' "$RUNS/${ARCH}_${variant}/config.json")"
  cut -d, -f1-7 "$RUNS/${ARCH}_${variant}/metrics.csv"
done
