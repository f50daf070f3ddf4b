#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine, for the Slurm integration test and for
# trying workflow/profiles/slurm without a real cluster.
#
#   scripts/slurm/start.sh      install slurmctld, slurmd and munge (Debian) if missing, write
#                               /etc/slurm/slurm.conf for this host, start munged, slurmctld and
#                               slurmd, and wait until `sinfo` shows the node idle
#   scripts/slurm/stop.sh       stop them again
#
# Needs root (package installation and the daemons). The node gets every CPU of the machine
# and the memory slurmd detects; one partition, `local`, is the default. There is no
# accounting database, so no sacct: run snakemake with `--slurm-status-command squeue`
# (squeue keeps finished jobs for MinJobAge = 300 s) and `--slurm-no-account`.
# Starting an idle cluster again does nothing, and starts side by side wait for each other:
# test sessions on one machine share the cluster, which runs until stop.sh.
# Exit status: 0 when the node is idle, 1 with a one-line reason otherwise.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARKER="# written by trialstats scripts/slurm/start.sh"
LOG_DIR=/var/log/slurm
WAIT_SECONDS=${SLURM_START_TIMEOUT:-60}

fail() {
  echo "slurm: $*" >&2
  exit 1
}

node_state() {
  sinfo --noheader --Node --format=%T 2>/dev/null | head -n 1
}

# sinfo's state of the node: "idle" when ready; a trailing * means slurmd is not responding.
if command -v sinfo >/dev/null 2>&1 && [[ "$(node_state)" == idle ]]; then
  echo "slurm: already running, node $(sinfo --noheader --Node --format=%N | head -n 1) is idle"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || fail "must run as root to install and start the Slurm daemons"

# One start at a time: test sessions running side by side share the cluster.
exec 9>/run/trialstats-slurm-start.lock
flock 9
if [[ "$(node_state)" == idle ]]; then
  echo "slurm: already running, started by another session"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || fail "slurmctld/slurmd/munge are missing and apt-get is not available"
  echo "slurm: installing slurmctld, slurmd, slurm-client and munge from Debian"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; } \
    || fail "apt-get could not install slurmctld slurmd slurm-client munge"
fi

# munge authenticates every message between the Slurm commands and daemons.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 755 /run/munge
  runuser -u munge -- munged 9>&- || fail "munged did not start"
  munge -n | unmunge >/dev/null || fail "munge cannot decode its own credential"
fi

if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
  fail "$CONF exists and was not written by this script; refusing to overwrite it"
fi

# `slurmd -C` prints this machine's node line (CPUs, sockets, cores, RealMemory).
host=$(hostname -s)
node_line=$(slurmd -C | head -n 1)
[[ $node_line == NodeName=* ]] || fail "slurmd -C did not describe this node: $node_line"
install -d -m 755 /etc/slurm "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
cat >"$CONF" <<CONFEOF
$MARKER
# Single-node cluster on localhost; regenerated on every start.
ClusterName=trialstats
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups needed: processes are tracked through /proc, tasks are not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No slurmdbd: no accounting storage, no per-job accounting samples.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue for 5 minutes.
MinJobAge=300
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONFEOF

# The daemons must not inherit the lock's descriptor (9>&-), or they would hold it forever.
pgrep -x slurmctld >/dev/null || slurmctld 9>&- || fail "slurmctld did not start; see $LOG_DIR/slurmctld.log"
pgrep -x slurmd >/dev/null || slurmd 9>&- || fail "slurmd did not start; see $LOG_DIR/slurmd.log"

for ((i = 0; i < WAIT_SECONDS; i++)); do
  state=$(node_state)
  case $state in
    idle) echo "slurm: node $host is idle ($(sinfo --noheader --format='%c CPUs, %m MB' | head -n 1))"; exit 0 ;;
    # Not responding: start slurmd unless one runs (one shutting down can linger a while).
    *\*) pgrep -x slurmd >/dev/null || slurmd 9>&- || true ;;
    down* | drain*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
fail "node $host not idle after ${WAIT_SECONDS}s (state: ${state:-unknown}); see $LOG_DIR/"
