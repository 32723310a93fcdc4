#!/usr/bin/env bash
# .ci/slurm/start.sh - bring up a REAL single-node Slurm cluster WITH real
# accounting (slurmdbd + MariaDB) on this machine (Debian 12, run as root, no
# systemd, no cgroups). Idempotent: running it again while the cluster is up
# only re-checks it; after stop.sh it starts everything again.
#
#   munged      (daemonises,          pid /run/munge/munged.pid)
#   mariadbd    (started with setsid, pid /run/mysqld/mysqld.pid)
#   slurmdbd    (daemonises,          pid /run/slurmdbd.pid)
#   slurmctld   (daemonises,          pid /run/slurmctld.pid)
#   slurmd      (daemonises,          pid /run/slurmd.pid)
#
# Copies of the pids of the daemons THIS script started are kept in
# $SLURM_RECIPE_STATE (default /run/slurm-recipe); .ci/slurm/stop.sh only ever
# signals those pids. A daemon that was already running (started by someone
# else) is used as it is and never stopped by .ci/slurm/stop.sh.
#
# ganlab's copy of the team recipe (shared/slurm, seen working on Debian 12): the tests of
# hardware=slurm and of preemption need a real slurmctld + slurmd + accounting (submitit polls sacct).
#
# With real accounting the real /usr/bin/sacct works, so the v1 sacct shim is
# not needed; if the v1 shim is found in /usr/local/bin/sacct it is removed.
#
# Tunables (environment):
#   SLURM_CPUS            CPUs advertised for the node      (default: nproc)
#   SLURM_REAL_MEMORY     RealMemory in MB                  (default: MemTotal - SLURM_MEM_MARGIN_MB)
#   SLURM_MEM_MARGIN_MB   margin kept for the OS            (default: 1024)
#   SLURM_DEF_MEM_PER_CPU default --mem-per-cpu in MB       (default: 1024)
#   SLURM_PARTITION       partition name                    (default: debug)
#   SLURM_CLUSTER_NAME    ClusterName (also the accounting cluster) (default: localcluster)
#   SLURM_START_TIMEOUT   seconds to wait for each readiness check (default: 60)
#   SLURM_CRED_EXPIRE     AuthInfo cred_expire; a requeued job restarts after this+1 s (default: 10)
#   SLURM_SCHED_INTERVAL  sched_interval/bf_interval seconds (default: 5)
#   SLURM_FAKE_GPUS       advertise N fake gres/gpu on the node, so jobs asking for
#                         --gpus-per-node / gres=gpu:N are accepted (they run on CPU,
#                         CUDA_VISIBLE_DEVICES is not set)          (default: 0)
#   SLURM_JOBACCT_GATHER  jobacct_gather plugin: linux (MaxRSS etc. in sacct) or none (default: linux)
#   SLURM_DB_BUFFER_POOL  MariaDB innodb_buffer_pool_size (default: 512M; its pages are touched
#                         lazily, so it costs little RSS; below ~512M slurmdbd logs a harmless
#                         "error: Database settings not recommended values: innodb_buffer_pool_size")
#   SLURM_DB_LEAN         1: shrink MariaDB caches slurmdbd does not need (key_buffer 1M, Aria
#                         pagecache 1M, InnoDB log buffer 2M): mariadbd RSS ~65 MB instead of
#                         ~110 MB with MariaDB's defaults (SLURM_DB_LEAN=0)   (default: 1)
#   SLURM_DB_PASS         password for MariaDB user slurm@localhost (default: the one already
#                         in /etc/slurm/slurmdbd.conf, else a new random one)
#   SLURM_CLEAN=1         start slurmctld with -c (forget old jobs/state; the accounting DB is kept)
set -euo pipefail

STATE_DIR=${SLURM_RECIPE_STATE:-/run/slurm-recipe}
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
GRES_CONF=/etc/slurm/gres.conf
LOG_DIR=/var/log/slurm
SPOOL=/var/lib/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DBD_PID=/run/slurmdbd.pid
MUNGE_PID=/run/munge/munged.pid
MYSQL_RUN=/run/mysqld
MYSQL_PID=$MYSQL_RUN/mysqld.pid
MYSQL_SOCK=$MYSQL_RUN/mysqld.sock
MYSQL_DATADIR=/var/lib/mysql
MYSQL_LOG_DIR=/var/log/mysql
NODE=$(hostname -s)
CLUSTER=${SLURM_CLUSTER_NAME:-localcluster}
CPUS=${SLURM_CPUS:-$(nproc)}
TOTAL_MB=$(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo)
REAL_MEM=${SLURM_REAL_MEMORY:-$((TOTAL_MB - ${SLURM_MEM_MARGIN_MB:-1024}))}
((REAL_MEM >= 512)) || REAL_MEM=$((TOTAL_MB / 2))
DEF_MEM=${SLURM_DEF_MEM_PER_CPU:-1024}
PARTITION=${SLURM_PARTITION:-debug}
WAIT_S=${SLURM_START_TIMEOUT:-60}
CRED_EXPIRE=${SLURM_CRED_EXPIRE:-10}
SCHED_INTERVAL=${SLURM_SCHED_INTERVAL:-5}
FAKE_GPUS=${SLURM_FAKE_GPUS:-0}
JOBACCT=${SLURM_JOBACCT_GATHER:-linux}
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_POOL=${SLURM_DB_BUFFER_POOL:-512M}
DB_LEAN=${SLURM_DB_LEAN:-1}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

log() { echo "[slurm-start $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ $CLUSTER =~ ^[a-z0-9_]+$ ]] || die "SLURM_CLUSTER_NAME must be lower case letters, digits, _"
[[ $JOBACCT == linux || $JOBACCT == none ]] || die "SLURM_JOBACCT_GATHER must be linux or none"

# alive, pid_alive, wait_gone (shared with stop.sh)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# wait_pidfile PIDFILE COMM SECONDS -> waits for a daemon to write its pid file
wait_pidfile() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    pid_alive "$1" "$2" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# wait_for SECONDS CMD... -> retry CMD every 0.1 s until it succeeds
wait_for() {
  local s=$1 i
  shift
  for ((i = 0; i < s * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# start_daemon NAME PIDFILE CMD...: run CMD (a daemon that writes PIDFILE, comm NAME) unless one is
# running already; remember the pid of one this script started (stop.sh stops only those)
start_daemon() {
  local name=$1 pidfile=$2 pid
  shift 2
  if pid=$(pid_alive "$pidfile" "$name"); then
    log "$name already running (pid $pid)"
    return 0
  fi
  log "starting $name"
  rm -f "$STATE_DIR/$name.pid" "$pidfile"
  "$@"
  wait_pidfile "$pidfile" "$name" 15 || die "$name did not start; tail $LOG_DIR/$name.log"
  pid_alive "$pidfile" "$name" >"$STATE_DIR/$name.pid"
}

# stop_ours NAME COMM [SECONDS]: stop a daemon we started earlier (used only on config change)
stop_ours() {
  local pid
  pid=$(pid_alive "$STATE_DIR/$1.pid" "$2") || { rm -f "$STATE_DIR/$1.pid"; return 0; }
  log "stopping $1 (pid $pid) to apply the new config"
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone "$pid" "${3:-15}" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
  rm -f "$STATE_DIR/$1.pid"
}

mysql_ping() { mysqladmin --socket="$MYSQL_SOCK" --connect-timeout=2 ping >/dev/null 2>&1; }
# slurmdbd answers (needs munge + slurmdbd + slurm.conf with AccountingStorageType=slurmdbd)
dbd_ping() { timeout 10 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }
cluster_known() { timeout 10 sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; }

# ---------------------------------------------------------------- 1. install
need=(/usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/slurmdbd
      /usr/sbin/mariadbd /usr/bin/mysqladmin /usr/bin/mariadb)
missing=0
for f in "${need[@]}"; do [[ -x $f ]] || missing=1; done
if ((missing)); then
  log "installing munge + slurm + slurmdbd + mariadb-server (apt)"
  export DEBIAN_FRONTEND=noninteractive
  pkgs=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
  aptopts=(-y --no-install-recommends -o DPkg::Lock::Timeout=600)
  if ! apt-get install "${aptopts[@]}" "${pkgs[@]}" >/tmp/slurm-recipe-apt.log 2>&1; then
    apt-get update -o DPkg::Lock::Timeout=600 >>/tmp/slurm-recipe-apt.log 2>&1 || true
    apt-get install "${aptopts[@]}" "${pkgs[@]}" >>/tmp/slurm-recipe-apt.log 2>&1 \
      || die "apt-get install failed, see /tmp/slurm-recipe-apt.log"
  fi
fi
for u in munge slurm mysql; do id "$u" >/dev/null 2>&1 || die "user $u missing (package broken?)"; done

install -d -m 0755 "$STATE_DIR"

# the v1 sacct shim would shadow the real sacct (it calls the real one first,
# but a plain install is cleaner): remove it if it is the recipe's shim
if [[ -f /usr/local/bin/sacct ]] && grep -q 'sacct fallback for a Slurm cluster without slurmdbd' /usr/local/bin/sacct 2>/dev/null; then
  log "removing the v1 sacct shim /usr/local/bin/sacct (real accounting is used now)"
  rm -f /usr/local/bin/sacct
fi

# ---------------------------------------------------------------- 2. config files
. "$(dirname "${BASH_SOURCE[0]}")/conf.sh"   # sets conf_changed, dbd_changed

# ---------------------------------------------------------------- 3. munge
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating /etc/munge/munge.key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running"
else
  log "starting munged"
  rm -f "$STATE_DIR/munged.pid"
  # --force: tolerate a stale socket left by a killed munged (munged still
  # refuses to start if another live munged holds the socket lock)
  runuser -u munge -- /usr/sbin/munged --force
  wait_pidfile "$MUNGE_PID" munged 10 || die "munged did not start (see /var/log/munge/munged.log)"
  pid_alive "$MUNGE_PID" munged >"$STATE_DIR/munged.pid"
  wait_for 5 bash -c 'munge -n | unmunge' || die "munge does not work"
fi

# ---------------------------------------------------------------- 4. mariadb
install -d -o mysql -g mysql -m 0755 "$MYSQL_RUN"
[[ -d $MYSQL_LOG_DIR ]] || install -d -o mysql -g adm -m 2750 "$MYSQL_LOG_DIR"
# server options on the command line (they override /etc/mysql/*; nothing is
# written to /etc/mysql). innodb_lock_wait_timeout=900 as Slurm recommends.
mysqld_args=(--user=mysql --datadir="$MYSQL_DATADIR" --socket="$MYSQL_SOCK" --pid-file="$MYSQL_PID"
             --log-error="$MYSQL_LOG_DIR/error.log" --bind-address=127.0.0.1
             --innodb-buffer-pool-size="$DB_POOL" --innodb-lock-wait-timeout=900)
if [[ $DB_LEAN == 1 ]]; then
  mysqld_args+=(--key-buffer-size=1M --aria-pagecache-buffer-size=1M --innodb-log-buffer-size=2M)
fi
if pid=$(pid_alive "$STATE_DIR/mariadbd.pid" mariadbd) && [[ "$(cat "$STATE_DIR/mariadbd.args" 2>/dev/null)" != "${mysqld_args[*]}" ]]; then
  log "mariadbd options changed"
  stop_ours mariadbd mariadbd 60
fi
if mysql_ping; then
  log "mariadbd already running"
elif pid=$(pid_alive "$MYSQL_PID" mariadbd); then
  log "mariadbd pid $pid is running but does not answer yet; waiting"
else
  if [[ ! -d $MYSQL_DATADIR/mysql ]]; then
    # the Debian package normally did this already (postinst)
    log "initialising $MYSQL_DATADIR (mariadb-install-db)"
    install -d -o mysql -g mysql -m 0755 "$MYSQL_DATADIR"
    mariadb-install-db --user=mysql --datadir="$MYSQL_DATADIR" --skip-test-db \
      --auth-root-authentication-method=socket >>"$MYSQL_LOG_DIR/install-db.log" 2>&1 \
      || die "mariadb-install-db failed, see $MYSQL_LOG_DIR/install-db.log"
  fi
  log "starting mariadbd"
  rm -f "$STATE_DIR/mariadbd.pid" "$MYSQL_PID"
  # mariadbd does not daemonise itself: setsid -f detaches it from this shell/session
  setsid -f /usr/sbin/mariadbd "${mysqld_args[@]}" </dev/null >>"$MYSQL_LOG_DIR/mariadbd.out" 2>&1
  wait_pidfile "$MYSQL_PID" mariadbd 30 || die "mariadbd did not start; tail $MYSQL_LOG_DIR/error.log"
  pid_alive "$MYSQL_PID" mariadbd >"$STATE_DIR/mariadbd.pid"
  printf '%s' "${mysqld_args[*]}" >"$STATE_DIR/mariadbd.args"
fi
wait_for "$WAIT_S" mysql_ping || die "mariadbd does not answer 'mysqladmin ping'; tail $MYSQL_LOG_DIR/error.log"

# database + user (root connects through the unix socket, Debian's default auth)
if ! MYSQL_PWD=$DB_PASS mariadb --socket="$MYSQL_SOCK" -u "$DB_USER" -e "USE \`$DB_NAME\`" >/dev/null 2>&1; then
  log "creating database $DB_NAME and user $DB_USER@localhost"
  mariadb --socket="$MYSQL_SOCK" -u root <<SQL || die "could not create the database/user (is root unix_socket auth enabled?)"
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
SQL
fi

# ---------------------------------------------------------------- 5. slurmdbd
((dbd_changed)) && stop_ours slurmdbd slurmdbd
if ((dbd_changed)) && pid=$(pid_alive "$DBD_PID" slurmdbd); then
  log "warning: $DBD_CONF changed but slurmdbd pid $pid was not started by this script"
fi
start_daemon slurmdbd "$DBD_PID" /usr/sbin/slurmdbd
wait_for "$WAIT_S" dbd_ping || { tail -n 20 "$LOG_DIR/slurmdbd.log" >&2 || true; die "slurmdbd does not answer 'sacctmgr show cluster'"; }
if ! cluster_known; then
  # slurmctld would also register itself on its first start; doing it here
  # makes the cluster known before any job record arrives
  log "registering cluster $CLUSTER in the accounting DB"
  timeout 30 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
  wait_for 10 cluster_known || die "cluster $CLUSTER not listed by 'sacctmgr show cluster'"
fi

# ---------------------------------------------------------------- 6. slurmctld + slurmd
if ((conf_changed)); then
  stop_ours slurmd slurmd
  stop_ours slurmctld slurmctld
  if pid=$(pid_alive "$CTLD_PID" slurmctld); then
    log "warning: config changed but slurmctld pid $pid was not started by this script; trying 'scontrol reconfigure'"
    scontrol reconfigure || true
  fi
fi

ctld_args=()
[[ ${SLURM_CLEAN:-0} == 1 ]] && ctld_args+=(-c)
start_daemon slurmctld "$CTLD_PID" /usr/sbin/slurmctld "${ctld_args[@]}"
start_daemon slurmd "$SLURMD_PID" /usr/sbin/slurmd

# ---------------------------------------------------------------- 7. wait for the node
deadline=$((SECONDS + WAIT_S))
resumed=0
while :; do
  st=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -1 || true)
  case $st in
    idle | mixed | allocated | completing) break ;;
    *'*') ;; # not responding yet (slurmd still registering)
    down | drain*)
      # sticky state, e.g. left over from an earlier config; resume once
      if ((!resumed)); then
        log "node state '$st' (reason: $(sinfo -h -N -n "$NODE" -o '%E')), trying RESUME"
        scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
        resumed=1
      fi ;;
  esac
  if ((SECONDS >= deadline)); then
    log "node state: '${st:-<no answer>}' reason: '$(sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null || true)'"
    tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
    die "node $NODE not idle after ${WAIT_S}s"
  fi
  sleep 0.2
done
log "cluster up: node $NODE is $st (cluster $CLUSTER, partition $PARTITION, CPUs=$CPUS, RealMemory=${REAL_MEM}MB, accounting: slurmdbd+MariaDB)"
