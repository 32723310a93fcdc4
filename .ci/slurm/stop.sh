#!/usr/bin/env bash
# .ci/slurm/stop.sh - stop the daemons that .ci/slurm/start.sh started:
# slurmd, slurmctld, slurmdbd, mariadbd, munged (in that order).
# Only pids recorded by start.sh in $SLURM_RECIPE_STATE are signalled,
# and only if /proc/PID/comm still names the expected daemon (guards against
# pid reuse). Never uses pkill/killall. Safe to run twice.
#
#   --keep-munge   leave munged running
#   --keep-db      leave mariadbd, slurmdbd and munged running (slurmdbd needs munge)
set -euo pipefail

STATE_DIR=${SLURM_RECIPE_STATE:-/run/slurm-recipe}
keep_munge=0 keep_db=0
for a in "$@"; do
  case $a in
    --keep-munge) keep_munge=1 ;;
    --keep-db) keep_db=1 keep_munge=1 ;;
    *) echo "usage: $0 [--keep-munge] [--keep-db]" >&2; exit 2 ;;
  esac
done

log() { echo "[slurm-stop $(date +%T)] $*" >&2; }

# alive, pid_alive, wait_gone (shared with start.sh)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# slurmctld and slurmdbd leave their own pid files behind; a stale
# /run/slurmctld.pid makes e.g. the slurmctld package's prerm script fail
clean_daemon_pidfile() {
  if [[ -n $2 && -f $1 && $(tr -dc '0-9' <"$1") == "$2" ]]; then rm -f "$1"; fi
}

# stop_one NAME COMM DAEMON_PIDFILE [SECONDS_BEFORE_SIGKILL]
stop_one() {
  local name=$1 comm=$2 f="$STATE_DIR/$1.pid" dpf=$3 wait_s=${4:-15} pid
  if [[ ! -s $f ]]; then
    log "$name: no pid file ($f), nothing to stop"
    return 0
  fi
  if ! pid=$(pid_alive "$f" "$comm"); then
    pid=$(tr -dc '0-9' <"$f")
    log "$name: pid '${pid}' is not a running $comm (already stopped)"
    rm -f "$f"
    clean_daemon_pidfile "$dpf" "$pid"
    return 0
  fi
  log "$name: SIGTERM pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$wait_s"; then
    log "$name: still alive after $wait_s s, SIGKILL pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$f"
  clean_daemon_pidfile "$dpf" "$pid"
}

# order matters: slurmd (talks to slurmctld), slurmctld (flushes job records
# to slurmdbd on SIGTERM), slurmdbd (needs MariaDB), mariadbd, then munge
stop_one slurmd slurmd /run/slurmd.pid
stop_one slurmctld slurmctld /run/slurmctld.pid
if ((!keep_db)); then
  stop_one slurmdbd slurmdbd /run/slurmdbd.pid
  # InnoDB shutdown: give it time before SIGKILL (it would recover, but slowly)
  stop_one mariadbd mariadbd /run/mysqld/mysqld.pid 120
  rm -f "$STATE_DIR/mariadbd.args"
fi
((keep_munge)) || stop_one munged munged /run/munge/munged.pid
log "done"
