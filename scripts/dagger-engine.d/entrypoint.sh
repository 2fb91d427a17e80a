#!/bin/sh
# PID 1 of the engine container: make the kernel interfaces writable, then run the
# engine under tini so the processes it spawns are reaped.
set -e

# The container runs with every capability but not --privileged (see scripts/dagger-engine),
# so /sys comes mounted read-only; the engine's CNI bridge needs it writable.
mount -o remount,rw /sys 2>/dev/null || :

# cgroup v2: controllers can only be delegated to child groups once no process sits in the
# root group, so move everything into /init first.
cg=/sys/fs/cgroup
if [ -f "$cg/cgroup.controllers" ]; then
    mkdir -p "$cg/init"
    while read -r pid; do echo "$pid" > "$cg/init/cgroup.procs" 2>/dev/null || :; done < "$cg/cgroup.procs"
    for c in $(cat "$cg/cgroup.controllers"); do
        echo "+$c" > "$cg/cgroup.subtree_control" 2>/dev/null || :
    done
fi

# One SQLite database per client: raise the open-file limit where the host allows it.
ulimit -n 1048576 2>/dev/null || :

exec tini -- /usr/local/bin/dagger-engine --config /etc/dagger/engine.toml "$@"
