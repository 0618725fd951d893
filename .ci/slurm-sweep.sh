#!/usr/bin/env bash
# A real one-node Slurm cluster (Debian's slurmctld, slurmd, munge; no systemd), started here
# and torn down at the end, and a successive-halving sweep through it as a throttled job
# array, with one task requeued while it trains. Checks: every run ended once, one final
# record per run, and the winner's weights are byte for byte a straight run's.
#
#   .ci/slurm-sweep.sh [MAKEMORE_BIN [XTASK_BIN]]   (root; installs the packages if missing;
#                                                  without XTASK_BIN, `cargo xtask`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/debug/makemore}")
if [ -n "${2:-}" ]; then XTASK=$(realpath "$2"); else XTASK="cargo xtask"; fi
WORK=$(realpath -m target/ci-slurm)
T0=$(date +%s)
say() { echo "--- [$(( $(date +%s) - T0 )) s] $*"; }

if ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurmctld slurmd slurm-client munge"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

rm -rf "$WORK"; mkdir -p "$WORK"/cluster/{state,spool,log}
C=$WORK/cluster
export SLURM_CONF=$C/slurm.conf
STARTED_MUNGE=""
teardown() {
  set +e
  [ -n "${JOB:-}" ] && scancel "$JOB" 2>/dev/null
  [ -f "$C/slurmd.pid" ] && kill "$(cat "$C/slurmd.pid")" 2>/dev/null
  [ -f "$C/slurmctld.pid" ] && kill "$(cat "$C/slurmctld.pid")" 2>/dev/null
  [ -n "$STARTED_MUNGE" ] && pkill -x munged
  sleep 1
  say "cluster stopped"
}
trap teardown EXIT

say "starting munge, slurmctld and slurmd"
mkdir -p /run/munge && chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  [ -s /etc/munge/munge.key ] || mungekey --create --force
  su -s /bin/sh munge -c /usr/sbin/munged
  STARTED_MUNGE=1
fi
HOST=$(hostname -s)
cat > "$SLURM_CONF" <<CONF
ClusterName=ci
SlurmctldHost=$HOST
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it runs again (default 120).
AuthInfo=cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/log/slurmctld.log
SlurmdLogFile=$C/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
KillWait=20
MinJobAge=600
$(slurmd -C | head -1) State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=30 State=UP
CONF
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.2; done
sinfo

OUT=$WORK/sweep
say "xtask sweep examples/grids/quick-halving.toml --slurm --shards 4 --throttle 2"
$XTASK sweep examples/grids/quick-halving.toml --slurm --shards 4 --throttle 2 \
  --bin "$BIN" --out "$OUT" --sbatch-arg=--cpus-per-task=1 --sbatch-arg=--time=10 | tee "$WORK/submit.txt"
JOB=$(tail -1 "$WORK/submit.txt")
cat "$OUT/slurm/sweep.sbatch"

# Requeue a task while it trains: a running task with a run in training (its lock held).
say "waiting for a task to train, to requeue it"
REQUEUED=""
for _ in $(seq 3000); do
  if pgrep -f "$OUT/bin/makemore train" >/dev/null; then
    TASK=$(squeue -h -j "$JOB" -t RUNNING -o %i | head -1)
    if [ -n "$TASK" ]; then
      scontrol requeue "$TASK" && REQUEUED=$TASK && break
    fi
  fi
  sleep 0.02
done
[ -n "$REQUEUED" ] || { echo "error: never saw a task training"; exit 1; }
say "requeued $REQUEUED while it trained"

say "waiting for the array to finish"
for _ in $(seq 600); do
  [ -z "$(squeue -h -j "$JOB" -o %i)" ] && break
  sleep 1
done
if [ -n "$(squeue -h -j "$JOB" -o %i)" ]; then
  squeue -j "$JOB"; tail -n 30 "$OUT"/slurm/*.out; echo "error: the array did not finish"; exit 1
fi
say "the array finished"
for f in "$OUT"/slurm/*.out; do echo "== $f"; cat "$f"; done
$XTASK sweep examples/grids/quick-halving.toml --out "$OUT" --bin "$BIN" --status

say "checks"
grep -q "restart 1" "$OUT"/slurm/*.out || { echo "error: no task says it was restarted"; exit 1; }
python3 - "$OUT" <<'PY'
import collections, glob, json, sys
out = sys.argv[1]
records = [json.loads(l) for f in sorted(glob.glob(f"{out}/results*.jsonl")) for l in open(f) if l.strip()]
finals = collections.Counter(r["id"] for r in records if "rung" not in r)
rungs = collections.Counter((r["id"], r["rung"]) for r in records if "rung" in r)
status = collections.Counter(r["status"] for r in records if "rung" not in r)
print("final records per run:", dict(finals))
print("rung records per (run, rung):", {f"{k[0]}@{k[1]}": v for k, v in rungs.items()})
assert len(finals) == 4 and set(finals.values()) == {1}, "every run needs exactly one final record"
assert set(rungs.values()) == {1}, "a run reported a rung twice"
assert status == {"ok": 1, "stopped": 3}, status
PY
winner=$(grep -h '"status":"ok"' "$OUT"/results*.jsonl | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')
"$BIN" train --config "$OUT/configs/$winner.json" --out "$WORK/straight" -q --samples 0 >/dev/null
cmp "$WORK/straight/model.safetensors" "$OUT/runs/$winner/model.safetensors"
say "ok: the winner $winner is byte for byte the straight run"
