"""Where a training step's time goes: `makemore bench` under `perf record` (the software
cpu-clock event, so it works where hardware counters are not exposed, as in most VMs), each
sample put in one bucket by its call stack, printed as a Markdown table.

    python3 xtask/bench/step_profile.py --config examples/configs/makemore-py/transformer.json
    python3 xtask/bench/step_profile.py --config examples/configs/makemore-py/gru.json --threads 2

Needs `perf` (Debian's linux-perf) and a release binary with line tables (the workspace's
release profile has them). Only samples under `train_step` count: the warm-up's data
loading and the process start are left out. A sample goes to the first bucket whose pattern
matches a frame, searched from the innermost frame outwards, except that matrix products
and memory work (allocation, zeroing, copies, page faults) are recognised at the innermost
frames, wherever they were called from.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (bucket, pattern) in the order they are tried on each frame, innermost first.
KERNELS = [
    ("attention", r"attention"),
    ("LayerNorm", r"layer_norm"),
    ("GELU", r"gelu"),
    ("recurrence (RNN/GRU cell)", r"recurrence"),
    ("AdamW update", r"adamw|optim"),
    ("cross-entropy", r"cross_entropy"),
    ("embedding", r"embedding"),
    ("dropout masks", r"dropout|mask::"),
    ("tanh", r"tanh"),
    ("linear layers (bias fill, column sums)", r"linear|column_sums"),
]
LEAF = [
    # matrixmultiply's, and makemore's own (gemm/direct.rs: `tile` inlined wherever).
    ("matrix products", r"matrixmultiply::|gemm::direct::|^tile<\d+> \(inlined\)$"),
    ("memory (allocation, zeroing, copies, page faults)",
     r"memset|memmove|memcpy|\bmi_|_mi_|malloc|\bfree\b|clear_page|page_fault|folio|alloc::alloc"),
]
AUTODIFF = ("autodiff bookkeeping (burn-autodiff)", r"burn_autodiff")
NDARRAY = ("other burn-ndarray operations", r"burn_ndarray|ndarray::")


def classify(frames):
    """The bucket of one sample's frames (innermost first), or None outside train_step."""
    if not any("train_step" in f for f in frames):
        return None
    # Matrix products and memory work, at the innermost frames (before any makemore frame).
    for f in frames:
        for bucket, pat in LEAF:
            if re.search(pat, f):
                return bucket
        if "makemore" in f:
            break
    for f in frames:
        # The scalar tanh is inlined into GELU, the gates and the layers: its caller decides.
        if "makemore" not in f or re.search(r"kernels::tanh( \(inlined\))?$", f):
            continue
        for bucket, pat in KERNELS:
            if re.search(pat, f.split("makemore", 1)[1]):
                return bucket
    for bucket, pat in (AUTODIFF, NDARRAY):
        if any(re.search(pat, f) for f in frames):
            return bucket
    return "other"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "target/release/makemore"))
    p.add_argument("--config", required=True, help="a makemore config (the model to train)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="RAYON_NUM_THREADS (default 1)")
    p.add_argument("--frequency", type=int, default=1000, help="samples per second")
    p.add_argument("--include", action="append", default=[], metavar="REGEX",
                   help="also print the share of the step's samples with any frame matching "
                        "REGEX (inclusive: whatever it calls, memory work too); repeatable")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        cmd = [args.bin, "bench", "--task", "train", "--batch-size", str(args.batch_size),
               "--steps", str(args.steps), "--warmup", "5", "--config", args.config, "--json"]
        rec = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.frequency),
               "--call-graph", "dwarf,16384", "-o", data, "--"] + cmd
        r = subprocess.run(rec, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"perf record failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"],
                                capture_output=True, text=True)
        if script.returncode != 0:
            sys.exit(f"perf script failed: {script.stderr.strip()[-500:]}")

    counts = collections.Counter()
    inclusive = collections.Counter()
    frames = []
    for line in script.stdout.splitlines() + [""]:
        line = line.strip()
        if line:
            parts = line.split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
            continue
        if frames:
            bucket = classify(frames)
            if bucket:
                counts[bucket] += 1
                for pattern in args.include:
                    if any(re.search(pattern, f) for f in frames):
                        inclusive[pattern] += 1
            frames = []
    total = sum(counts.values())
    if total == 0:
        sys.exit("no samples under train_step: was the binary built with line tables?")
    config = os.path.relpath(os.path.abspath(args.config), ROOT)
    print(f"`{config}`, batch {args.batch_size}, {args.threads} thread(s), "
          f"{total} samples of training steps:\n")
    print("| where | share of a step |\n|---|---:|")
    for bucket, n in counts.most_common():
        print(f"| {bucket} | {100 * n / total:.1f}% |")
    if args.include:
        print("\n| samples with a frame matching | share of a step |\n|---|---:|")
        for pattern in args.include:
            print(f"| `{pattern}` | {100 * inclusive[pattern] / total:.1f}% |")


if __name__ == "__main__":
    main()
