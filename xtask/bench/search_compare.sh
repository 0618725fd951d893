#!/usr/bin/env bash
# TPE against random search, same budget: examples/grids/search-small.toml swept with
# method "random" and "tpe", seeds 1, 2 and 3 each; prints every sweep's best dev loss and
# each method's median (the table in docs/results.md).
#
#   xtask/bench/search_compare.sh [MAKEMORE_BIN] [OUT_DIR]
#
# Sweeps are restartable: a second call finds their runs recorded and only prints the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/makemore}
out=${2:-runs/search-compare}
grid=examples/grids/search-small.toml
mkdir -p "$out/grids"
[ -x "$bin" ] || cargo build --release --quiet -p makemore-cli
declare -A best after
for method in random tpe; do
  for seed in 1 2 3; do
    g="$out/grids/$method-$seed.toml"
    # The same grid with its method and seed changed; its corpus path is made absolute.
    sed -e "s|^method = .*|method = \"$method\"|" -e "s|^seed = .*|seed = $seed|" \
        -e "s|^data = .*|data = \"$PWD/../shared/data/names.txt\"|" "$grid" > "$g"
    cargo xtask sweep "$g" --bin "$bin" --out "$out/$method-$seed" --jobs 2 >&2
    best[$method-$seed]=$(cat "$out/$method-$seed"/results*.jsonl \
      | sed -n 's/.*"dev_loss":\([0-9.]*\).*/\1/p' | sort -g | head -1 | xargs printf '%.4f')
    # The median dev loss of the runs after the shared random start (index >= startup).
    after[$method-$seed]=$(cat "$out/$method-$seed"/results*.jsonl \
      | sed -n 's/.*"index":\([0-9]*\),.*"dev_loss":\([0-9.]*\).*/\1 \2/p' \
      | awk -v s="$(sed -n 's/^startup = //p' "$grid")" '$1 >= s {print $2}' | sort -g \
      | awk '{a[NR] = $1} END {m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.4f", m}')
  done
done
echo "| method | best dev, seed 1 | seed 2 | seed 3 | median best dev | median dev after the random start, seeds 1 / 2 / 3 |"
echo "|---|---:|---:|---:|---:|---:|"
for method in random tpe; do
  vals=("${best[$method-1]}" "${best[$method-2]}" "${best[$method-3]}")
  median=$(printf '%s\n' "${vals[@]}" | sort -g | sed -n 2p)
  echo "| $method | ${vals[0]} | ${vals[1]} | ${vals[2]} | $median | ${after[$method-1]} / ${after[$method-2]} / ${after[$method-3]} |"
done
