#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for testing the Slurm profile (CI runs it).
#
#   .ci/slurm-cluster.sh install   # Debian's slurm-wlm and munge, unless already installed
#   .ci/slurm-cluster.sh start     # munged, slurmctld and slurmd; returns once the node is idle
#   .ci/slurm-cluster.sh stop      # stops the daemons that `start` started, by their pid
#
# Run as root. The cluster lives in the directory of $SLURM_CONF (default below): its slurm.conf,
# state, spool, pid files and logs. Nothing under /etc is changed, except that a munge key is
# created if there is none. Slurm's commands (sinfo, sbatch, squeue) find this cluster through
# SLURM_CONF, so export the same SLURM_CONF wherever they run; Slurm jobs inherit it.
#
# One partition `debug` holds the one node, with this machine's CPUs and memory; there is no job
# accounting (sacct has nothing to report: use squeue for job status) and no GPU.
set -euo pipefail

SLURM_CONF=${SLURM_CONF:-/tmp/marlrepro-slurm/slurm.conf}
CLUSTER_DIR=$(dirname "$SLURM_CONF")
MARKER="# Written by marlrepro's .ci/slurm-cluster.sh"
MUNGE_PID_FILE=/run/munge/munged.pid
export SLURM_CONF

log() { echo "slurm-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

install_packages() {
    if [[ $(dpkg-query -W -f='${db:Status-Status} ' slurm-wlm munge 2>/dev/null) == "installed installed " ]]; then
        log "slurm-wlm and munge are installed"
        return
    fi
    log "installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge
}

# The pid in pid file $1 if that process is alive and runs program $2, else nothing. (Debian's
# slurmctld and slurmd are links to slurmctld-wlm and slurmd-wlm, hence the prefix match.)
live_pid() {
    local pid
    [[ -s $1 ]] || return 0
    pid=$(<"$1")
    if [[ $(ps -o comm= -p "$pid" 2>/dev/null) == "$2"* ]]; then
        echo "$pid"
    fi
}

start_munge() {
    if munge -n >/dev/null 2>&1; then
        log "munged is already running; using it"
        return
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating the munge key /etc/munge/munge.key"
        install -d -o munge -g munge -m 0700 /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- munged
    # Ours to stop: `stop` only ends the munged whose pid it finds in the cluster directory.
    cp "$MUNGE_PID_FILE" "$CLUSTER_DIR/munged.pid"
    munge -n >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
}

write_config() {
    local host node
    host=$(hostname -s)
    node=$(slurmd -C | grep '^NodeName=')   # NodeName=<host> CPUs=... RealMemory=..., as slurmd sees them
    cat >"$SLURM_CONF" <<EOF
$MARKER
ClusterName=marlrepro-ci
# Daemons talk over the loopback interface: the host name need not resolve.
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$CLUSTER_DIR/state
SlurmdSpoolDir=$CLUSTER_DIR/spool
SlurmctldPidFile=$CLUSTER_DIR/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/slurmd.pid
SlurmctldLogFile=$CLUSTER_DIR/slurmctld.log
SlurmdLogFile=$CLUSTER_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Finished jobs stay visible to squeue for 5 minutes: Snakemake's Slurm plugin reads job status
# with squeue here (no accounting) and falls back to sacct when MinJobAge is under 2 minutes.
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_for_idle_node() {
    local state
    for _ in $(seq 60); do
        state=$(sinfo --noheader --format=%t 2>/dev/null || true)
        if [[ $state == idle ]]; then
            log "up: partition debug, node $(hostname -s) idle (SLURM_CONF=$SLURM_CONF)"
            return
        fi
        sleep 1
    done
    tail -n 20 "$CLUSTER_DIR/slurmctld.log" "$CLUSTER_DIR/slurmd.log" >&2 || true
    die "the node is not idle after 60 s (state: ${state:-no answer})"
}

start() {
    [[ $EUID -eq 0 ]] || die "run as root"
    command -v slurmctld >/dev/null || die "Slurm is not installed: run '$0 install' first"
    if [[ -n $(live_pid "$CLUSTER_DIR/slurmctld.pid" slurmctld) ]]; then
        log "already running (SLURM_CONF=$SLURM_CONF)"
        return
    fi
    if [[ -e $SLURM_CONF ]] && ! grep -qxF "$MARKER" "$SLURM_CONF"; then
        die "$SLURM_CONF exists and was not written by this script; set SLURM_CONF to a new path"
    fi
    trap 'log "start failed; stopping what was started"; stop' EXIT
    mkdir -p "$CLUSTER_DIR"
    rm -rf "$CLUSTER_DIR/state" "$CLUSTER_DIR/spool"
    mkdir -p "$CLUSTER_DIR/state" "$CLUSTER_DIR/spool"
    write_config
    start_munge
    slurmctld   # both daemons fork, writing the pid files named in slurm.conf
    slurmd
    wait_for_idle_node
    trap - EXIT
}

# Cancel the cluster's queued and running jobs, so that no job outlives the daemons.
cancel_jobs() {
    local jobs
    mapfile -t jobs < <(squeue --noheader --format=%i 2>/dev/null)
    ((${#jobs[@]})) || return 0
    log "cancelling jobs ${jobs[*]}"
    scancel "${jobs[@]}"
    for _ in $(seq 20); do
        [[ -z $(squeue --noheader --format=%i 2>/dev/null) ]] && return
        sleep 0.5
    done
}

stop() {
    local name pid
    if [[ -n $(live_pid "$CLUSTER_DIR/slurmctld.pid" slurmctld) ]]; then
        cancel_jobs
    fi
    for name in slurmd slurmctld munged; do
        pid=$(live_pid "$CLUSTER_DIR/$name.pid" "$name")
        if [[ -n $pid ]]; then
            log "stopping $name (pid $pid)"
            kill "$pid" || true   # it may just have exited
            for _ in $(seq 20); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.5
            done
            if kill -0 "$pid" 2>/dev/null; then
                log "$name (pid $pid) ignored SIGTERM; killing it"
                kill -KILL "$pid"
            fi
        fi
        rm -f "$CLUSTER_DIR/$name.pid"
    done
}

case ${1:-} in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 install|start|stop" ;;
esac
