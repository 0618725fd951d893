#!/usr/bin/env bash
# Prepares xtask/bench/gpu.sh for a GPU machine lent for a few minutes, on the build machine
# (x86-64), from anywhere in the checkout:
#   - builds makemore (ndarray, wgpu and cuda) and xtask in release mode, strips them and
#     copies them into .gpu-bench/;
#   - copies the canonical corpus (../shared/data/names.txt, which does not travel) there;
#   - downloads the Vulkan loader packages into .gl/ (for wgpu where the machine has none);
#   - adds both folders to .git/info/exclude and checks that they and the tracked files fit
#     in the 64 MiB that travel.
# Then run, on the GPU machine, with .gpu-bench and .gl carried:  bash xtask/bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
LIMIT=$((64 * 1024 * 1024))
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for d in /.gpu-bench/ /.gl/; do
  grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"
done

echo "== building (release; wgpu, cuda and the default ndarray)"
cargo build --release -p makemore-cli --features wgpu,cuda
cargo build --release -p xtask
rm -rf .gpu-bench && mkdir -p .gpu-bench
cp target/release/makemore target/release/xtask .gpu-bench/
strip .gpu-bench/makemore .gpu-bench/xtask
if [ ! -s ../shared/data/names.txt ]; then
  echo "error: ../shared/data/names.txt (the canonical corpus) is missing"; exit 1
fi
cp ../shared/data/names.txt .gpu-bench/names.txt

echo "== Vulkan loader packages (unpacked on the GPU machine only if it has no libvulkan)"
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1) \
    || echo "warning: could not download libvulkan1; wgpu rows need the machine's own loader"
fi

tracked=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
carried=$(du -cb .gpu-bench .gl 2>/dev/null | tail -1 | cut -f1)
total=$((tracked + carried))
ls -l .gpu-bench .gl
echo "binaries $(du -cb .gpu-bench/makemore .gpu-bench/xtask | tail -1 | cut -f1) bytes; tracked files $tracked; carried $carried; total $total of $LIMIT"
if [ "$total" -ge "$LIMIT" ]; then
  echo "error: $total bytes would travel, over the 64 MiB limit"; exit 1
fi
echo "ready: carry [\".gpu-bench\", \".gl\"] and run: bash xtask/bench/gpu.sh"
