#!/usr/bin/env bash
# Integration test of `harness run --executor slurm` against a real single-node Slurm on
# localhost (.ci/slurm-cluster.sh): a tiny synthetic experiment (a foundation teacher and
# four students in two stage arrays) submitted through Slurm gives the same table as a local
# run; the foundation task is killed midway (scancel), which cancels the student array after
# it (afterok + --kill-on-invalid-dep); submitting again resumes the foundation run from its
# checkpoint (taking over the dead task's claim) and completes everything; `harness cancel`
# empties the queue; Slurm is shut down cleanly. Needs root (the daemons) and apt.
#
#   .ci/slurm-test.sh [HARNESS_BINARY]     (default: target/release/harness)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
H=$(realpath "${1:-target/release/harness}")
W=$(mktemp -d "${TMPDIR:-/tmp}/harness-slurm.XXXXXX")
chmod 755 "$W"   # munged runs as user munge and must reach its socket under $W/cluster
C=$W/cluster
T0=$SECONDS
say() { printf '[slurm-test %3ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
fail() { say "FAIL: $*"; "$REPO/.ci/slurm-cluster.sh" logs "$C" >&2 || true; exit 1; }
# until_ok SECONDS CMD...: poll CMD every 0.2 s (the kill must land before the run ends)
until_ok() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < end)) || return 1; sleep 0.2; done
}
[ -x "$H" ] || fail "no harness binary at $H (cargo build --release first)"

"$REPO/.ci/slurm-cluster.sh" install
trap 'rc=$?; "$REPO/.ci/slurm-cluster.sh" down "$C" || rc=1; rm -rf "$W"; exit $rc' EXIT
# (a failing command substitution inside eval would not stop the script)
ENV=$("$REPO/.ci/slurm-cluster.sh" up "$C") || fail "the cluster did not come up"
eval "$ENV"
say "cluster up ($(sinfo -h -o '%P %D %T %c CPUs'))"

cd "$W"
cp "$REPO/datasets.toml" .
# 40 epochs of a tiny model: a few seconds per run, long enough to kill one midway.
cat >exp.toml <<'EOF'
name = "slurm_ci"
description = "SYNTHETIC smoke experiment of the Slurm integration test"
seeds = [0, 1]
stages = ["foundation", "decompose"]

[grid]
method = ["mtl", "lorkd"]
pretrain = ["medmnist"]
foundation = ["teacher"]

[profile.smoke]
data = "synthetic"
image_size = 16
epochs = 40
batch_size = 16
max_train_per_task = 24
max_val_per_task = 8
max_test_per_task = 16
difficulty = 0.5

[profile.smoke.model]
arch = "resnet"
widths = [4, 8]
depths = [1, 1]

[profile.smoke.optim]
name = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 1e-4
schedule = "cosine"

[profile.smoke.foundation.teacher.model]
arch = "resnet_bottleneck"
widths = [4, 8]
depths = [1, 1]
EOF
harness() { "$H" --results-dir "$W/$1" "${@:2}"; }
status_of() { harness shared status exp.toml | awk -v r="$1" '$1 == r { print $2 }'; }

say "local reference run"
harness local run exp.toml --threads 1 --plain 2>local.log || { cat local.log; fail "local run"; }
harness local report --format markdown --reports-dir "$W/reports-local" >local.md

say "dry run"
harness shared run exp.toml --executor slurm --threads 1 --dry-run >dry.txt 2>/dev/null
grep -q -- '--dependency=afterok:$JOB_0 --kill-on-invalid-dep=yes' dry.txt || fail "dry run lacks the afterok chain"
grep -q -- '#SBATCH --array=0-3' dry.txt || fail "dry run lacks the student array"
[ ! -e shared ] || fail "the dry run wrote into the results folder"

say "submit"
harness shared run exp.toml --executor slurm --threads 1 2>submit.log || { cat submit.log; fail "submit"; }
cat submit.log >&2
# (mawk, Debian's awk, has no {16}: grep finds the run id)
FOUNDATION=$(harness shared plan exp.toml | grep '^foundation' | grep -oE '\b[0-9a-f]{16}\b')
JOB0=$(awk '/^  job .* foundation/ { print $2 }' submit.log)
JOB1=$(awk '/^  job .* decompose/ { print $2 }' submit.log)
[ -n "$FOUNDATION" ] && [ -n "$JOB0" ] && [ -n "$JOB1" ] || fail "could not read the run and job ids"

say "kill the foundation task ${JOB0}_0 midway"
epochs_done() { sed -n 's/.*"epochs_done": \([0-9]*\).*/\1/p' "$W/shared/$FOUNDATION/status.json" 2>/dev/null; }
at_least_epochs() { [ "$(epochs_done)" -ge "$1" ]; }
queue_empty() { [ -z "$(squeue -h)" ]; }
all_done() { harness shared status exp.toml | tail -n1 | grep -qx '5 done'; }
until_ok 120 at_least_epochs 5 || fail "the foundation run never got going"
scancel "${JOB0}_0"
until_ok 60 queue_empty || fail "jobs still queued after the kill: $(squeue -h)"
KILLED_AT=$(epochs_done)
harness shared status exp.toml | tee status-killed.txt >&2
[ "$(status_of "$FOUNDATION")" = interrupted ] || fail "killed foundation run not shown as interrupted"
grep -q "${JOB0}_0 CANCELLED" status-killed.txt || fail "Slurm state of the killed task not shown"
grep -q "DependencyNeverSatisfied" status-killed.txt || fail "the student array was not cancelled by the failed dependency"
((KILLED_AT < 40)) || fail "the foundation run finished before the kill"
say "killed after $KILLED_AT of 40 epochs; students cancelled"

say "submit again"
harness shared run exp.toml --executor slurm --threads 1 2>resubmit.log || { cat resubmit.log; fail "resubmit"; }
cat resubmit.log >&2
grep -q "submitted 5 runs in 2 arrays" resubmit.log || fail "expected the 5 unfinished runs to be submitted again"
until_ok 300 all_done || { harness shared status exp.toml >&2; fail "the resubmitted runs did not finish"; }
harness shared status exp.toml >&2
grep -q "took over the claim from pid" "shared/$FOUNDATION/log.txt" || fail "no takeover in the foundation run's log"
# (The status may lag the checkpoint by one epoch when the kill lands between the two.)
grep -qE "resuming after epoch ($KILLED_AT|$((KILLED_AT + 1)))\$" "shared/$FOUNDATION/log.txt" \
  || fail "the foundation run did not resume after epoch $KILLED_AT: $(grep resuming "shared/$FOUNDATION/log.txt")"
harness shared run exp.toml --executor slurm 2>&1 | grep -q "nothing to submit" || fail "done runs were submitted again"

say "compare with the local run"
harness shared report --format markdown --reports-dir "$W/reports-shared" >shared.md
diff -u local.md shared.md >&2 || fail "the Slurm table differs from the local one"
for d in local/*/; do
  id=$(basename "$d")
  [ -f "$d/metrics.parquet" ] || continue
  [ -f "shared/$id/metrics.parquet" ] || fail "run $id missing from the Slurm results"
done

say "cancel"
sed 's/^name = "slurm_ci"/name = "slurm_ci_cancel"/; s/^seeds = \[0, 1\]/seeds = [7]/' exp.toml >cancel.toml
harness shared run cancel.toml --executor slurm --threads 1 2>/dev/null
harness shared cancel cancel.toml | tee cancel.txt >&2
grep -q "cancelled array jobs" cancel.txt || fail "cancel did not cancel"
until_ok 60 queue_empty || fail "jobs left after cancel: $(squeue -h)"

say "claim log (first lines):"
head -n 6 shared/claims.log >&2
say "PASS in $((SECONDS - T0)) s"
