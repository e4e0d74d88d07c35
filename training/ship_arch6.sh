#!/usr/bin/env bash
# Network 6 as shipped (issue 14, part 3), run from an installed copy of colorize, on both cores:
#   bash training/ship_arch6.sh RUN_DIR [RECIPE OPTIONS...]
# A later session continues from the exported weights with a fresh schedule (a warm restart):
#   INIT=models/arch6.pt SEED=N bash training/ship_arch6.sh RUN_DIR ...
# with a seed no earlier run of these weights used: each epoch's crops follow from (seed, epoch), so the same
# seed would replay the crops the init weights were trained on.
set -euo pipefail
run="${1:?run folder}"; shift
data="${DATA:-../shared/data/train}"
val="${VAL:-../shared/data/val}"
init=()
[ -n "${INIT:-}" ] && init=(--init "$INIT")
mkdir -p "$run"
/usr/bin/time -v colorize train --arch 6 --data "$data" --val "$val" --batch-size 32 --lr 0.001 --seed "${SEED:-0}" \
    --out "$run" "${init[@]}" "$@" 2> >(tee "$run/train.log" >&2)
