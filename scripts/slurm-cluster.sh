#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the `slurm` glue's tests (run as root).
#   scripts/slurm-cluster.sh start   install slurm-wlm + munge with apt when missing, write
#                                    /etc/slurm/slurm.conf for this host, start munged,
#                                    slurmctld and slurmd; does nothing when they already answer
#   scripts/slurm-cluster.sh stop    stop the daemons this script started (by their pid files)
#   scripts/slurm-cluster.sh status  exit 0 when the controller answers and the node is idle/up
# No slurmdbd: sacct needs it (and a MariaDB); the glue reads finished jobs from the controller
# (`squeue --states=all` / `scontrol show job` while MinJobAge keeps them), see ARCHITECTURE.md.
set -euo pipefail
STATE=/var/run/clearml-slurm-test
CONF=/etc/slurm/slurm.conf
MARK="# written by clearml-agent scripts/slurm-cluster.sh"

need_root() { [ "$(id -u)" = 0 ] || { echo "slurm-cluster.sh: run as root (it installs packages and starts daemons)" >&2; exit 1; }; }

up() { timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'; }

install() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "installing slurm-wlm and munge with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
}

write_conf() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        echo "slurm-cluster.sh: $CONF exists and was not written by this script; not touching it" >&2
        exit 1
    fi
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE"
    # Four job slots per core: test jobs mostly wait on the server, and the glue's cap is what
    # the tests watch. config_overrides lets slurmd accept CPUs above what it counts.
    cat >"$CONF" <<CONF
$MARK
ClusterName=clearml-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
InactiveLimit=0
MpiDefault=none
NodeName=$host CPUs=$((cpus * 4)) RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=30 State=UP OverSubscribe=NO
CONF
}

start() {
    need_root
    install
    if up; then echo "slurm cluster already up"; return 0; fi
    write_conf
    mkdir -p "$STATE" /run/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        (command -v mungekey >/dev/null && mungekey --create --force) || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    fi
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    if ! munge -n >/dev/null 2>&1; then
        # munged refuses to run as root; it runs as the munge user.
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
        sleep 0.5
        cp /run/munge/munged.pid "$STATE/munged.pid" 2>/dev/null || true
    fi
    if ! [ -s "$STATE/slurmctld.pid" ] || ! kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
        /usr/sbin/slurmctld -i
    fi
    if ! [ -s "$STATE/slurmd.pid" ] || ! kill -0 "$(cat "$STATE/slurmd.pid")" 2>/dev/null; then
        /usr/sbin/slurmd
    fi
    for _ in $(seq 1 60); do
        if up; then
            echo "slurm cluster up: $(sinfo -h -o '%P %D nodes, %c CPUs, %T')"
            return 0
        fi
        scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "slurm-cluster.sh: the cluster did not come up; see /var/log/slurm/*.log" >&2
    sinfo >&2 || true
    exit 1
}

stop() {
    need_root
    for d in slurmd slurmctld munged; do
        local f="$STATE/$d.pid"
        if [ -s "$f" ]; then
            local pid; pid=$(cat "$f")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$f"
        fi
    done
    echo "slurm cluster stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) up ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
