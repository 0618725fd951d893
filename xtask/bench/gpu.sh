#!/usr/bin/env bash
# The GPU benchmark, as one script for a machine lent for a few minutes: it runs prebuilt
# binaries (nothing is compiled there) and prints every number.
#
# Prepare, on the build machine, from the repository root:
#   cargo build --release --features wgpu,cuda -p makemore-cli && cargo build --release -p xtask
#   mkdir -p .gpu-bench && cp target/release/makemore target/release/xtask .gpu-bench/
#   strip .gpu-bench/*; echo /.gpu-bench/ >> .git/info/exclude
# (and, where the machine has no Vulkan loader, the .gl/ packages that the device tool's
# README describes). Then, on the GPU machine:
#   bash xtask/bench/gpu.sh [PYTHON]
# It writes the GPU section of docs/performance.md (into $OUT if set) and prints it. With
# CPU_BENCH=1 it then also runs the CPU suite on the host's cores, one try per case (the
# many-core rows and thread scaling of issue 15), into performance-cpu.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.gpu-bench/makemore}
XTASK=${XTASK:-.gpu-bench/xtask}
PYTHON=${1:-python3}
OUT_MD=${OUT:+$OUT/performance.md}
OUT_MD=${OUT_MD:-docs/performance.md}
if [ -n "${OUT:-}" ]; then cp docs/performance.md "$OUT_MD"; fi
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())' || true
# Correctness first: the same short run on the CPU and each GPU backend.
for b in ndarray wgpu cuda; do
  echo "== train --backend $b (3000 steps)"
  "$BIN" train --backend "$b" --steps 3000 --out "/tmp/gpu-check-$b" --force --samples 5 2>&1 | tail -12 || true
done
"$XTASK" bench --device cuda --bin "$BIN" --pytorch "$PYTHON" --data ../shared/data/names.txt --out "$OUT_MD"
if [ "${CPU_BENCH:-0}" = 1 ]; then
  "$XTASK" bench --repeat 1 --bin "$BIN" --pytorch "$PYTHON" --data ../shared/data/names.txt \
    --out "$(dirname "$OUT_MD")/performance-cpu.md"
fi
