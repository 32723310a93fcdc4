# .ci/slurm/lib.sh - process helpers sourced by start.sh and stop.sh (bash, no side effects).

# alive PID: true while any thread of PID is still running. (A multithreaded
# daemon's main thread turns into a zombie "Z" while its other threads are
# still shutting down, so looking only at /proc/PID/stat is not enough.)
alive() {
  local t st
  for t in /proc/"$1"/task/*/stat; do
    st=$(awk '{print $3}' "$t" 2>/dev/null) || continue
    [[ -n $st && $st != Z && $st != X ]] && return 0
  done
  return 1
}

# pid_alive PIDFILE COMM -> prints pid and returns 0 if the pid in PIDFILE is a live COMM
# (the comm check guards against pid reuse)
pid_alive() {
  local f=$1 comm=$2 pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid && -r /proc/$pid/comm ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  alive "$pid" || return 1
  echo "$pid"
}

# wait_gone PID SECONDS: true once PID has exited, false if it is still alive after SECONDS
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do alive "$1" || return 0; sleep 0.1; done
  return 1
}
