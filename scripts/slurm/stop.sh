#!/usr/bin/env bash
# Stop the single-node cluster started by scripts/slurm/start.sh: cancel its jobs, then stop
# slurmd, slurmctld and munged by their pid files.
set -euo pipefail

if command -v scancel >/dev/null 2>&1; then
  scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
fi
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  if [[ -s $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null; then
    echo "slurm: stopped $(basename "$pidfile" .pid)"
  fi
done
