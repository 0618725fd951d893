#!/usr/bin/env bash
# Counts the GPU kernels one training step launches on wgpu (lavapipe is enough to count).
# CubeCL's profiling log at level "minimal" (a cubecl.toml in the working directory) names
# every kernel it runs; a run of 2N steps minus a run of N steps, over N, is one step's
# launches (set-up, warm-up and compilation cancel out). Prints a Markdown table, and the
# kernels of one step of each model by name.
#
#   bash xtask/bench/kernel-launches.sh [BIN]    (BIN: a makemore built with --features wgpu;
#                                                 default target/release/makemore)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/makemore}")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cat > "$W/cubecl.toml" <<TOML
[profiling.logger]
level = "minimal"
file = "$W/launches.log"
TOML
# run NAME STEPS FLAGS…: one bench run; its log kept as NAME.log.
run() {
  local name=$1 steps=$2; shift 2
  rm -f "$W/launches.log"
  (cd "$W" && "$BIN" bench --backend wgpu --task train --warmup 2 --steps "$steps" "$@" --json > /dev/null)
  grep 'Executing' "$W/launches.log" | sed 's/.*Executing //' > "$W/$name.log"
  wc -l < "$W/$name.log"
}
N=10
echo "| model | kernels | launches per training step |"
echo "|---|---|---:|"
for model in default wide; do
  for kernels in fused plain; do
    flags=(--kernels "$kernels" --batch-size 32)
    [ "$model" = wide ] && flags=(--config "$ROOT/examples/configs/wide.json" --kernels "$kernels" --batch-size 128)
    a=$(run "$model-$kernels-a" "$N" "${flags[@]}")
    b=$(run "$model-$kernels-b" $((2 * N)) "${flags[@]}")
    echo "| $model | $kernels | $(( (b - a) / N )) |"
  done
done
for model in default wide; do
  echo
  echo "Kernels per step of the $model model (fused), by name:"
  # What the second run launched beyond the first: N steps' kernels, by name.
  python3 - "$W/$model-fused-a.log" "$W/$model-fused-b.log" "$N" <<'PY'
import collections, sys
a, b = (collections.Counter(open(p).read().splitlines()) for p in sys.argv[1:3])
n = int(sys.argv[3])
for name, count in sorted(((k, b[k] - a[k]) for k in b), key=lambda kv: -kv[1])[:25]:
    if count:
        print(f"{count / n:8.1f}  {name}")
PY
done
