#!/usr/bin/env bash
# The GPU measurement, as one script for a machine lent for a few minutes. Nothing is built
# there: xtask/bench/gpu-prepare.sh, run first on the build machine, puts stripped binaries
# and the canonical corpus in .gpu-bench/ (and Vulkan loader packages in .gl/); carry both.
#
#   bash xtask/bench/gpu.sh [PYTHON]        (PYTHON with torch+CUDA; default python3)
#
# In order, every command under a time limit:
#   1. correctness: the default model, the wide model (LayerNorm, dropout, AdamW) and the
#      BatchNorm WaveNet trained 50 steps on ndarray, wgpu and cuda; every step's loss must
#      agree with ndarray's within f32 tolerance (relative 1e-3), else FAILED and exit 1;
#   2. `xtask bench --device cuda`: makemore on wgpu and cuda against PyTorch CUDA eager,
#      the default model at batch 32, 4,096 and 65,536, the wide model, the WaveNet, a full
#      evaluation, sampling 1,000 words (PyTorch in batches too);
#   3. the host's CPU rows (`xtask bench --quick --repeat 1`, every thread count up to the
#      core count, PyTorch beside them); FULL_CPU=1 for the full step counts;
#   4. a summary, printed last.
# Results go to $OUT (the device tool's output folder) or target/gpu-bench/. SECTIONS="1 2"
# (say) runs only those parts, for a rerun within the time left.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:-python3}
BIN=.gpu-bench/makemore
XTASK=.gpu-bench/xtask
DATA=.gpu-bench/names.txt
RES=${OUT:-target/gpu-bench}
WORK=$(mktemp -d /tmp/gpu-bench.XXXXXX)
mkdir -p "$RES"
# The reports are docs/performance.md with their sections rewritten.
cp docs/performance.md "$RES/performance.md"; cp docs/performance.md "$RES/performance-cpu.md"
if [ ! -x "$BIN" ] || [ ! -x "$XTASK" ] || [ ! -s "$DATA" ]; then
  echo "error: .gpu-bench/ is incomplete; run xtask/bench/gpu-prepare.sh on the build machine and carry .gpu-bench"
  exit 1
fi
START=$(date +%s)
SECTIONS=" ${SECTIONS:-1 2 3} "
want() { [[ $SECTIONS == *" $1 "* ]]; }
FAILED=()
SUMMARY=()
# lim SECS CMD…: the command under a time limit; says so when the limit stopped it.
lim() {
  local secs=$1; shift
  timeout --kill-after=10 "$secs" "$@"
  local rc=$?
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "TIMED OUT after ${secs} s: $*"
  return $rc
}
elapsed() { echo "$(( $(date +%s) - START )) s"; }

if ! ldconfig -p | grep -q libvulkan && ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
lim 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
lim 60 "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
lim 30 "$BIN" bench --backend wgpu --task eval --steps 1 --json | head -c 400; echo
lim 30 "$BIN" bench --backend cuda --task eval --steps 1 --json | head -c 400; echo

echo; echo "== 1. correctness ($(elapsed))"
# compare A.csv B.csv: every step's loss within relative 1e-3; prints the verdict.
compare() {
  "$PYTHON" - "$1" "$2" <<'PY'
import csv, sys
a, b = ([float(r["loss"]) for r in csv.DictReader(open(p))] for p in sys.argv[1:3])
if len(a) != len(b) or not a:
    print(f"FAILED: {len(a)} steps vs {len(b)}"); sys.exit(1)
worst = max(abs(x - y) / max(abs(x), 1.0) for x, y in zip(a, b))
bad = [i + 1 for i, (x, y) in enumerate(zip(a, b)) if abs(x - y) >= 1e-3 * max(abs(x), 1.0)]
if bad:
    print(f"FAILED: step {bad[0]}: {a[bad[0]-1]} vs {b[bad[0]-1]} ({len(bad)} steps off; worst relative {worst:.2e})"); sys.exit(1)
print(f"agree: {len(a)} steps, worst relative difference {worst:.2e}, last loss {a[-1]:.5f} vs {b[-1]:.5f}")
PY
}
want 1 && for model in default wide wavenet; do
  case $model in
    default) flags=(--batch-size 64) ;;
    wide) flags=(--config examples/configs/wide.json --batch-size 128) ;;
    wavenet) flags=(--config examples/configs/wavenet-lecture.json --batch-size 32) ;;
  esac
  common=(train --data "$DATA" "${flags[@]}" --steps 50 --eval-every 0 --checkpoint-every 0 --samples 0 --force)
  lim 120 "$BIN" "${common[@]}" --backend ndarray --out "$WORK/$model-ndarray" > "$WORK/$model-ndarray.log" 2>&1 \
    || { echo "FAILED: $model on ndarray"; tail -3 "$WORK/$model-ndarray.log"; FAILED+=("$model ndarray"); continue; }
  for b in wgpu cuda; do
    if lim 180 "$BIN" "${common[@]}" --backend "$b" --out "$WORK/$model-$b" > "$WORK/$model-$b.log" 2>&1; then
      verdict=$(compare "$WORK/$model-ndarray/metrics.csv" "$WORK/$model-$b/metrics.csv")
    else
      verdict="FAILED: $(tail -1 "$WORK/$model-$b.log")"
    fi
    echo "$model on $b vs ndarray: $verdict"
    SUMMARY+=("| $model | $b | $verdict |")
    [[ $verdict == FAILED* ]] && FAILED+=("$model $b")
  done
done

echo; echo "== 2. GPU rows ($(elapsed))"
if want 2; then
  lim 420 "$XTASK" bench --device cuda --bin "$BIN" --pytorch "$PYTHON" --data "$DATA" \
    --case-timeout 90 --out "$RES/performance.md" 2> "$RES/gpu-bench.log" || FAILED+=("xtask bench --device cuda")
  tail -5 "$RES/gpu-bench.log"
fi

echo; echo "== 3. the host's CPU rows ($(elapsed))"
if want 3; then
  quick=(--quick); [ "${FULL_CPU:-0}" = 1 ] && quick=()
  lim 300 "$XTASK" bench "${quick[@]}" --repeat 1 --bin "$BIN" --pytorch "$PYTHON" --data "$DATA" \
    --case-timeout 60 --out "$RES/performance-cpu.md" 2> "$RES/cpu-bench.log" || FAILED+=("xtask bench (CPU)")
  tail -3 "$RES/cpu-bench.log"
fi
cp "$WORK"/*.log "$RES/" 2>/dev/null
tar -C "$WORK" -czf "$RES/metrics.tgz" $(cd "$WORK" && ls -d */metrics.csv 2>/dev/null) 2>/dev/null

echo; echo "== 4. summary ($(elapsed))"
echo "| model | backend | against ndarray, 50 steps |"; echo "|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
echo
# The tables of the sections that ran (the reports start as copies of docs/performance.md).
want 2 && sed -n '/<!-- bench-gpu begin -->/,/<!-- bench-gpu end -->/p' "$RES/performance.md" | grep -v '^<!--'
want 3 && sed -n '/<!-- bench begin -->/,/<!-- bench end -->/p' "$RES/performance-cpu.md" | grep '^|' | head -16
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "FAILED: ${FAILED[*]}"; exit 1
fi
echo "all checks passed ($(elapsed))"
