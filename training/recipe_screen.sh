#!/usr/bin/env bash
# Recipe screen for network 6 (issue 14, part 2): each candidate gets the same compute, 20,480 crops of
# 128x128 (the same pixels at other sizes), chosen on val/cbsd68 only. Run from an installed copy:
#   bash training/recipe_screen.sh RUNS_DIR
set -euo pipefail
runs="${1:-runs/screen}"
data="${DATA:-../shared/data/train}"
val="${VAL:-../shared/data/val}"
mkdir -p "$runs"
common=(--arch 6 --data "$data" --val "$val" --epochs 5 --batch-size 32 --lr 0.001 --seed 0)
run() {  # name, then options
    local name="$1"; shift
    [ -f "$runs/$name/done" ] && return 0
    echo "=== $name: $* ($(date -u +%H:%M:%S))"
    /usr/bin/time -v colorize train "${common[@]}" --out "$runs/$name" "$@" 2> >(tee "$runs/$name.log" >&2)
    touch "$runs/$name/done"
}
run huber128 --crop 128 --epoch-size 4096 --loss huber
run mse128 --crop 128 --epoch-size 4096 --loss mse
run huber128-unbalanced --crop 128 --epoch-size 4096 --loss huber --no-balanced
run huber192 --crop 192 --epoch-size 1820 --loss huber
# run huber256 --crop 256 --epoch-size 1024 --loss huber   # not run in the first screen (time); 192 is the test of context
run design400 --crop 400 --fit --epoch-size 419 --loss mse --ema-decay 0
run mse128-unbalanced --crop 128 --epoch-size 4096 --loss mse --no-balanced
echo "=== screen done ($(date -u +%H:%M:%S))"
