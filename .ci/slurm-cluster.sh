#!/usr/bin/env bash
# Throwaway single-node Slurm on localhost for the integration tests that submit sbatch job
# arrays. Debian 12, run as root; needs neither systemd nor cgroups.
#
#   .ci/slurm-cluster.sh install       # apt packages (the only step that needs the network)
#   eval "$(.ci/slurm-cluster.sh up DIR)"   # start munged+slurmctld+slurmd, sets SLURM_CONF
#   .ci/slurm-cluster.sh down DIR      # cancel jobs, stop all daemons (idempotent)
#   .ci/slurm-cluster.sh logs DIR      # tails of the daemon logs, for failure reports
#
# Everything lives under DIR (config DIR/etc/slurm.conf). Ports: SLURMCTLD_PORT (6817) and
# SLURMD_PORT (6818). Only `up` writes to stdout, one line: `export SLURM_CONF=...`.
set -euo pipefail

PKGS=(slurmctld slurmd slurm-client munge)
say() { echo "slurm-cluster: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# until_ok SECONDS CMD...: retry CMD every 0.2 s; fails after SECONDS
until_ok() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < end)) || return 1; sleep 0.2; done
}
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
none_alive() { local p; for p; do ! alive "$p" || return 1; done; }
pidof_file() { cat "$1" 2>/dev/null || true; }
# stop PID...: the daemons were already asked to exit; escalate TERM, then KILL
stop() {
  until_ok 20 none_alive "$@" && return 0
  say "still running after 20 s, SIGTERM: $*"; kill -TERM "$@" 2>/dev/null || true
  until_ok 10 none_alive "$@" && return 0
  say "still running, SIGKILL: $*"; kill -KILL "$@" 2>/dev/null || true
  until_ok 5 none_alive "$@"
}

cmd_install() {
  dpkg-query -W -f='${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -c 'ok installed' \
    | grep -qx "${#PKGS[@]}" && { say "already installed"; return 0; }
  # Without systemd, invoke-rc.d would start the packages' init scripts (a system munged
  # with /etc/munge's key would linger); policy-rc.d exit 101 forbids that during install.
  local policy=/usr/sbin/policy-rc.d ours=
  [ -e $policy ] || { printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; ours=1; }
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends)
  # A fresh image may have no package lists ("Unable to locate package"): only when the
  # install fails, apt-get update and try once more.
  if ! "${apt[@]}" "${PKGS[@]}" >&2; then
    say "install failed, running apt-get update and retrying"
    apt-get update -q >&2 && "${apt[@]}" "${PKGS[@]}" >&2 || { [ -z "$ours" ] || rm -f $policy; exit 1; }
  fi
  [ -z "$ours" ] || rm -f $policy
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v slurmctld >/dev/null || die "slurm not installed: run $0 install"
  local p; for p in "$CTLD_PORT" "$SLURMD_PORT"; do   # a second cluster would fail obscurely
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "port $p already in use (another cluster? run '$0 down DIR' or set SLURMCTLD_PORT/SLURMD_PORT)"
    fi
  done
  ! alive "$(pidof_file "$D/run/slurmctld.pid")" || die "a cluster is already up in $D"
  # From here on a failed `up` takes down what it started, so a retry finds free ports.
  trap 'rc=$?; [ $rc = 0 ] || cmd_down >/dev/null 2>&1 || true' EXIT
  # Fresh state each time (old job records would be recovered); other files in DIR are kept.
  mkdir -p "$D"; rm -rf "$D"/{etc,state,spool,run,log,munge}
  mkdir -p "$D"/{etc,state,spool,run,log,munge}
  # munged runs as user munge: it must reach DIR/munge, so DIR (often mktemp's 0700) needs o+x.
  chmod go+x "$D"; chown munge:munge "$D/munge"
  runuser -u munge -- test -w "$D/munge" || die "user munge cannot reach $D/munge (a parent dir not o+x?)"
  dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$D/munge/munge.key"; chmod 0400 "$D/munge/munge.key"
  runuser -u munge -- munged --socket="$SOCK" --key-file="$D/munge/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
    --seed-file="$D/munge/munged.seed" >&2 || die "munged failed: $(cmd_logs 2>&1)"
  until_ok 10 sh -c 'munge -n -S "$1" | unmunge -S "$1"' _ "$SOCK" || die "munge not answering"

  local host node; host=$(hostname -s)
  node=$(slurmd -C | head -n1)   # "NodeName=vm CPUs=2 ... RealMemory=24105": real cores and memory
  [[ $node == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node"
  cat >"$D/etc/slurm.conf" <<EOF
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
# clients and daemons use this munged, not a system one under /run/munge
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
SlurmUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
# no cgroups on CI machines
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no slurmdbd: finished jobs are only in slurmctld's memory, kept MinJobAge seconds
AccountingStorageType=accounting_storage/none
MinJobAge=3600
# the default waits ~3 s between scheduling waves (each array/dependency step)
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -f "$D/etc/slurm.conf" >&2 || die "slurmctld failed: $(cmd_logs 2>&1)"
  until_ok 15 scontrol ping || die "slurmctld not answering: $(cmd_logs 2>&1)"
  slurmd -f "$D/etc/slurm.conf" >&2 || die "slurmd failed: $(cmd_logs 2>&1)"
  until_ok 30 sh -c '[ "$(sinfo -h -n "$1" -o %T)" = idle ]' _ "$host" \
    || die "node not idle: $(sinfo -h -o '%T %E' 2>&1) $(cmd_logs 2>&1)"
  say "up in ${SECONDS}s: $(sinfo -h -o '%P %D %T %N')"
  printf 'export SLURM_CONF=%q\n' "$D/etc/slurm.conf"
}

cmd_down() {
  [ -d "$D" ] || { say "nothing to stop"; return 0; }
  local ctld sd munged
  ctld=$(pidof_file "$D/run/slurmctld.pid"); sd=$(pidof_file "$D/run/slurmd.pid")
  munged=$(pidof_file "$D/munge/munged.pid")
  if alive "$ctld"; then
    # `scontrol shutdown` leaves running jobs (slurmstepd and the job's processes) alive:
    # cancel everything and wait until nothing is pending/running/completing first.
    scancel --partition=ci >&2 || true
    until_ok 30 sh -c '[ -z "$(squeue -h -t PD,CF,R,S,CG -o %i)" ]' \
      || say "WARNING: jobs still active: $(squeue -h 2>&1)"
    scontrol shutdown >&2 || true   # stops slurmctld and every slurmd
  elif alive "$sd"; then kill -TERM "$sd"   # orphan slurmd: nobody else will stop it
  fi
  # shellcheck disable=SC2086 # empty pids vanish on purpose
  stop $ctld $sd || die "slurm daemons did not exit"
  if alive "$munged"; then kill -TERM "$munged"; stop "$munged" || die "munged did not exit"; fi
  say "down"
}

cmd_logs() {
  local f; for f in "$D"/log/slurmctld.log "$D"/log/slurmd.log "$D"/munge/munged.log; do
    [ -r "$f" ] && { echo "==> $f <=="; tail -n "${LOG_LINES:-40}" "$f"; }
  done; true
}

usage() { sed -n "5,8s|^# *||p" "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in
  install) cmd_install; exit ;;
  up | down | logs) [ $# -eq 2 ] || usage ;;
  *) usage ;;
esac
D=$(realpath -m "$2")   # absolute: it ends up in slurm.conf and SLURM_CONF
SOCK=$D/munge/munge.socket
CTLD_PORT=${SLURMCTLD_PORT:-6817} SLURMD_PORT=${SLURMD_PORT:-6818}
export SLURM_CONF=$D/etc/slurm.conf
"cmd_$1"
