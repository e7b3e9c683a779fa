#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try `hydra/launcher=slurm` sweeps without a cluster
# and for the tests marked `cluster` (CI runs them after this script).
#
#   sudo bash scripts/slurm_local.sh          install (Debian/Ubuntu apt), configure, start
#   sudo bash scripts/slurm_local.sh stop     stop the daemons this script started
#   sudo bash scripts/slurm_local.sh status   what is running
#
# What it does, each step skipped when already done (running it twice changes nothing):
#   1. apt-get install slurm-wlm munge (slurmctld, slurmd and the client commands);
#   2. a munge key (/etc/munge/munge.key) and a running munged;
#   3. /etc/slurm/slurm.conf for one node, this host: all of its CPUs (nproc) and its memory less
#      1 GiB for the system (or LOCAL_SLURM_MEM_MB), one partition `local` (the default),
#      no accounting database (`sacct` has nothing to show: see docs/sweeps.md), processes
#      tracked without cgroups so that it also works inside containers;
#   4. slurmctld and slurmd, then waits until `srun hostname` answers.
# A slurm.conf that this script did not write is never overwritten: on a machine that already
# has a cluster, use that cluster.
set -euo pipefail

conf_dir=/etc/slurm
conf="$conf_dir/slurm.conf"
marker="# written by distrl-agents scripts/slurm_local.sh"
state_dir=/var/spool/slurmctld
spool_dir=/var/spool/slurmd
log_dir=/var/log/slurm
run_dir=/run/slurm
partition=local

say() { echo "slurm_local: $*" >&2; }
die() { say "error: $*"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo bash $0 ${1:-}): it installs packages and starts system daemons."
fi

pid_of() {  # pid_of NAME PIDFILE -> prints the pid when that daemon runs
    local pid
    if [ -f "$2" ] && pid="$(cat "$2")" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && grep -q "$1" "/proc/$pid/comm" 2>/dev/null; then
        echo "$pid"
    fi
}

stop() {
    local name pid
    for name in slurmd slurmctld; do
        pid="$(pid_of "$name" "$run_dir/$name.pid")"
        if [ -n "$pid" ]; then
            say "stopping $name (pid $pid)"
            kill "$pid"
        fi
    done
    say "stopped (munged, shared with other programs, is left running; the configuration stays in $conf)"
}

status() {
    local name
    for name in slurmctld slurmd; do
        if [ -n "$(pid_of "$name" "$run_dir/$name.pid")" ]; then
            say "$name running"
        else
            say "$name not running"
        fi
    done
    if command -v sinfo >/dev/null; then sinfo || true; fi
}

case "${1:-start}" in
    stop) stop; exit 0 ;;
    status) status; exit 0 ;;
    start) ;;
    *) die "unknown command '$1': use start (default), stop or status" ;;
esac

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge (apt-get)"
    command -v apt-get >/dev/null \
        || die "no apt-get: install SLURM (slurmctld, slurmd, client commands) and munge with your package manager, then rerun"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

# 2. munge: a key readable by the munge user only, and the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
munge_user=munge
id "$munge_user" >/dev/null 2>&1 || munge_user=root
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown "$munge_user" /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    if [ "$munge_user" = root ]; then
        munged --force
    else
        runuser -u "$munge_user" -- munged
    fi
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.2
    done
    munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# 3. slurm.conf.
host="$(hostname -s)"
cpus="$(nproc)"
mem_total_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
mem_mb="${LOCAL_SLURM_MEM_MB:-$(( mem_total_mb > 2048 ? mem_total_mb - 1024 : mem_total_mb ))}"
slurm_user=slurm
id "$slurm_user" >/dev/null 2>&1 || slurm_user=root
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    die "$conf exists and was not written by this script; not touching it. This machine already has a SLURM configuration: use that cluster (or move the file away to get a local one)."
fi
new_conf="$(cat <<EOF
$marker
# One node (this host), one partition, no accounting. Stop: sudo bash scripts/slurm_local.sh stop
ClusterName=distrl-local
SlurmctldHost=$host
SlurmUser=$slurm_user
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start again after cred_expire seconds (default 120).
AuthInfo=cred_expire=30
StateSaveLocation=$state_dir
SlurmdSpoolDir=$spool_dir
SlurmctldPidFile=$run_dir/slurmctld.pid
SlurmdPidFile=$run_dir/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
# No cgroups: works in containers (processes are tracked through /proc).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobRequeue=1
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=30
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$partition Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)"
mkdir -p "$conf_dir" "$state_dir" "$spool_dir" "$log_dir" "$run_dir"
chown "$slurm_user" "$state_dir" "$log_dir" "$run_dir"
changed=0
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$new_conf" ]; then
    say "writing $conf ($host: $cpus CPUs, $mem_mb MB, partition '$partition')"
    printf '%s\n' "$new_conf" > "$conf"
    changed=1
fi

# 4. Daemons. A changed configuration restarts the ones already running.
if [ "$changed" = 1 ]; then
    for name in slurmd slurmctld; do
        pid="$(pid_of "$name" "$run_dir/$name.pid")"
        if [ -n "$pid" ]; then
            say "restarting $name for the new configuration"
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
    done
fi
if [ -z "$(pid_of slurmctld "$run_dir/slurmctld.pid")" ]; then
    say "starting slurmctld"
    slurmctld
fi
if [ -z "$(pid_of slurmd "$run_dir/slurmd.pid")" ]; then
    say "starting slurmd"
    slurmd
fi
for _ in $(seq 60); do
    if scontrol ping 2>/dev/null | grep -q UP; then break; fi
    sleep 0.5
done
scontrol ping | grep -q UP || die "slurmctld does not answer (see $log_dir/slurmctld.log)"
# A node left DOWN/DRAIN by an earlier run (e.g. killed daemons) is put back in service.
if sinfo -h -N -o %t | grep -qE 'down|drain|fail'; then
    scontrol update NodeName="$host" State=RESUME 2>/dev/null || true
fi
for _ in $(seq 60); do  # slurmd registers with slurmctld
    if sinfo -h -N -o %t | grep -qE 'idle|mix|alloc'; then break; fi
    sleep 0.5
done
err="$(mktemp)"
trap 'rm -f "$err"' EXIT
if ! out="$(timeout 60 srun --partition="$partition" -N1 -n1 -t 1 hostname 2>"$err")"; then
    die "srun hostname failed: $(cat "$err") (see $log_dir/slurmd.log and $log_dir/slurmctld.log)"
fi
say "ready: partition '$partition' on $out ($cpus CPUs, $mem_mb MB); try: srun hostname"
say "stop with: sudo bash scripts/slurm_local.sh stop"
