#!/usr/bin/env bash
# A real two-node Slurm cluster on this machine, for the cluster test tier.
#   cluster.sh up STATE [PYXIS_PREFIX]   start munged, slurmctld (netns rs-ctl) and two slurmd (netns rs-n1, rs-n2);
#                                        with PYXIS_PREFIX (enroot + pyxis installed there by
#                                        ../shared/tools/build-enroot-pyxis.sh) pyxis is loaded into every srun and step
#   cluster.sh down STATE   stop everything, remove the namespaces and the nodes' enroot containers (safe to run twice)
#   STATE/bin/in-ctl CMD    runs a client command (srun, sbatch, squeue, ...) on the controller host
# Network safety: every address lives only inside namespaces created here, and the subnet is made
# unreachable in the root namespace first, so a mistaken client fails locally instead of leaving.
set -euo pipefail

action=${1:?usage: cluster.sh up|down STATE [PYXIS_PREFIX]}
state=$(realpath -m "${2:?usage: cluster.sh up|down STATE [PYXIS_PREFIX]}")
pyxis=${3:-}
subnet=10.77.0
nodes=(n1 n2)
ns_prefix=rs-

down() {
  for pidfile in "$state"/pids/*.pid; do
    [[ -f "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pidfile in "$state"/pids/*.pid; do
    [[ -f "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  # Anything still running inside the namespaces (job steps, stray ranks) goes too.
  for ns in ctl "${nodes[@]}"; do
    if ip netns list | grep -w "${ns_prefix}$ns" >/dev/null; then
      for pid in $(ip netns pids "${ns_prefix}$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "${ns_prefix}$ns" 2>/dev/null || true
    fi
  done
  ip route del unreachable "$subnet.0/24" 2>/dev/null || true
  remove_containers
}

# enroot keeps each node's containers under its per-node data folder (build-enroot-pyxis.sh's lab config:
# BASE/enroot-lab.<uid>/<node>/): whatever a job left there goes, fuse mounts of killed steps first.
remove_containers() {
  [[ -f $state/pyxis-prefix ]] || return 0
  local base dir
  base=$(cat "$(cat "$state/pyxis-prefix")/etc/enroot-lab-base" 2>/dev/null) || return 0
  for dir in "$base"/enroot-lab.*/n[12]; do
    [[ -d $dir ]] || continue
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
    [[ -n $(ls -A "$dir/data" 2>/dev/null) ]] && echo "cluster: removing containers left on ${dir##*/}: $(ls "$dir/data" | tr '\n' ' ')"
    rm -rf --one-file-system "$dir"
  done
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "cluster: $what not ready after ${seconds}s" >&2
  return 1
}

# Runs a command in namespace $1 with its own hostname $2 and the cluster's hosts file.
in_host() {
  local ns=$1 host=$2
  shift 2
  nsenter --net="/run/netns/${ns_prefix}$ns" unshare --uts --mount --propagation slave \
    bash -c 'hostname "$0"; mount --bind "$1" /etc/hosts; shift; exec "$@"' "$host" "$state/hosts" "$@"
}

up() {
  down
  rm -rf "$state"
  mkdir -p "$state"/{pids,munge,ctld,bin,jobs}
  for n in "${nodes[@]}"; do mkdir -p "$state/nodes/$n"/{spool,tmp}; done

  ip route add unreachable "$subnet.0/24"
  ip netns add "${ns_prefix}ctl"
  ip -n "${ns_prefix}ctl" link set lo up
  ip -n "${ns_prefix}ctl" link add br0 type bridge
  ip -n "${ns_prefix}ctl" addr add "$subnet.1/24" dev br0
  ip -n "${ns_prefix}ctl" link set br0 up
  printf '127.0.0.1 localhost\n%s.1 ctl\n' "$subnet" >"$state/hosts"
  local i=11
  for n in "${nodes[@]}"; do
    ip netns add "${ns_prefix}$n"
    ip -n "${ns_prefix}$n" link set lo up
    ip -n "${ns_prefix}ctl" link add "v$n" type veth peer name eth0 netns "${ns_prefix}$n"
    ip -n "${ns_prefix}ctl" link set "v$n" master br0 up
    ip -n "${ns_prefix}$n" addr add "$subnet.$i/24" dev eth0
    ip -n "${ns_prefix}$n" link set eth0 up
    printf '%s.%s %s\n' "$subnet" "$i" "$n" >>"$state/hosts"
    i=$((i + 1))
  done

  mungekey -c -f -k "$state/munge/munge.key" 2>/dev/null || dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 0400 "$state/munge/munge.key"
  munged --force --socket="$state/munge/munge.socket" --key-file="$state/munge/munge.key" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" --seed-file="$state/munge/munge.seed" </dev/null >/dev/null 2>&1
  cp "$state/munge/munged.pid" "$state/pids/munged.pid"

  cat >"$state/slurm.conf" <<CONF
ClusterName=rankserve-test
SlurmctldHost=ctl($subnet.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/nodes/%n/spool
SlurmctldPidFile=$state/ctld/slurmctld.pid
SlurmdPidFile=$state/nodes/%n/slurmd.pid
SlurmctldLogFile=$state/ctld/slurmctld.log
SlurmdLogFile=$state/nodes/%n/slurmd.log
PlugStackConfig=$state/plugstack.conf
TmpFS=$state/nodes/%n/tmp
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
# Slurm's default; the sbatch scripts drain within 3/4 of it before the SIGKILL
KillWait=30
InactiveLimit=0
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=n1 NodeAddr=$subnet.11 CPUs=4 Gres=gpu:4 State=UNKNOWN
NodeName=n2 NodeAddr=$subnet.12 CPUs=4 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
CONF
  # Fake GPUs: device files that are /dev/null, so --gpus-per-node sets CUDA_VISIBLE_DEVICES.
  {
    echo "AutoDetect=off"
    for n in "${nodes[@]}"; do
      mkdir -p "$state/dev/$n"
      for g in 0 1 2 3; do ln -sf /dev/null "$state/dev/$n/nvidia$g"; done
      echo "NodeName=$n Name=gpu File=$state/dev/$n/nvidia[0-3]"
    done
  } >"$state/gres.conf"
  export SLURM_CONF="$state/slurm.conf"
  # pyxis: srun reads plugstack.conf for the --container-* options, each node's slurmstepd for the container.
  # Named containers are removed by pyxis' epilog at job end (container_scope=job); a step starts the .sqsh
  # without unpacking it (use_squashfuse=1); steps find enroot on PATH.
  local path=$PATH
  : >"$state/plugstack.conf"
  if [[ -n $pyxis ]]; then
    [[ -f $pyxis/lib/slurm/spank_pyxis.so ]] || { echo "cluster: no $pyxis/lib/slurm/spank_pyxis.so (run ../shared/tools/build-enroot-pyxis.sh)" >&2; return 1; }
    echo "required $pyxis/lib/slurm/spank_pyxis.so runtime_path=$state/pyxis container_scope=job use_squashfuse=1" >"$state/plugstack.conf"
    echo "$pyxis" >"$state/pyxis-prefix"
    path=$pyxis/bin:$PATH
  fi

  in_host ctl ctl slurmctld -D -i -f "$state/slurm.conf" >"$state/ctld/stdout.log" 2>&1 &
  echo $! >"$state/pids/slurmctld.pid"
  for n in "${nodes[@]}"; do
    PATH=$path in_host "$n" "$n" slurmd -D -N "$n" -f "$state/slurm.conf" >"$state/nodes/$n/stdout.log" 2>&1 &
    echo $! >"$state/pids/slurmd-$n.pid"
  done

  # Client wrapper: runs on the controller host (its network, hostname and hosts file).
  cat >"$state/bin/in-ctl" <<WRAP
#!/usr/bin/env bash
export SLURM_CONF="$state/slurm.conf"
exec nsenter --net=/run/netns/${ns_prefix}ctl unshare --uts --mount --propagation slave \\
  bash -c 'hostname ctl; mount --bind "$state/hosts" /etc/hosts; exec "\$@"' in-ctl "\$@"
WRAP
  chmod +x "$state/bin/in-ctl"

  wait_for 30 "slurmctld" "$state/bin/in-ctl" scontrol ping
  wait_for 30 "both nodes idle" bash -c "'$state/bin/in-ctl' sinfo -h -N -o '%N %t' | grep -c idle | grep -qx 2"
  echo "cluster: up (state in $state)"
}

case "$action" in
  up)
    if ! up; then
      echo "cluster: start failed; logs:" >&2
      tail -n 20 "$state"/ctld/*.log "$state"/nodes/*/*.log "$state"/munge/*.log 2>/dev/null >&2 || true
      down
      exit 1
    fi
    ;;
  down) down ;;
  *) echo "usage: cluster.sh up|down STATE" >&2; exit 2 ;;
esac
