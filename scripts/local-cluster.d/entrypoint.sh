#!/bin/bash
# PID 1's child (under tini) in every node container of scripts/local-cluster.
# Prepares the container so that kubelet and containerd find what they expect without
# reaching past the container: cgroups, sysctls and mounts are all the container's own.
#
# Environment: NODE_ROLE (control-plane | worker), NODE_NAME, NODE_ZONE, POD_CIDR
# (the other nodes' pod ranges are routed by `up`, which knows their addresses).
set -euo pipefail

log() { printf '[node %s] %s\n' "$NODE_NAME" "$*"; }

# Docker mounts the container's own cgroups (private cgroup namespace) read-only; make
# them writable so kubelet can create kubepods/ below the container's cgroup.
for dir in /sys/fs/cgroup/*; do
    mountpoint -q "$dir" && mount -o remount,bind,rw "$dir"
done

# /proc/sys stays read-only: most of it is the host's kernel. Only the network part is
# per network namespace, so only that is made writable (CNI plugins set it in pods).
mount --bind /proc/sys/net /proc/sys/net
mount -o remount,bind,rw /proc/sys/net

# kubelet insists on these kernel-wide values and would write them to the host's kernel.
# Show it files holding the values it wants instead; the host keeps its own.
mkdir -p /run/kvstore-sysctl
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    file="/run/kvstore-sysctl/${kv%%=*}"
    mkdir -p "$(dirname "$file")"
    echo "${kv#*=}" > "$file"
    mount --bind "$file" "/proc/sys/${kv%%=*}"
done

# Volume mounts made by kubelet must reach the containers runc starts.
mount --make-rshared /

mkdir -p /var/log/kvstore
start() {  # start NAME COMMAND...: run in the background, log to /var/log/kvstore/NAME.log
    local name=$1
    shift
    "$@" >"/var/log/kvstore/$name.log" 2>&1 &
    log "started $name (pid $!)"
}

if [ "$NODE_ROLE" = control-plane ]; then
    pki=/etc/kubernetes/pki
    ip="$(hostname -i | awk '{print $1}')"
    start etcd etcd --name "$NODE_NAME" --data-dir /var/lib/etcd \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380
    start kube-apiserver kube-apiserver --advertise-address "$ip" --bind-address 0.0.0.0 \
        --secure-port 6443 --etcd-servers http://127.0.0.1:2379 \
        --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --client-ca-file "$pki/ca.crt" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key"
    # The controllers read RBAC-protected objects at start: wait for the bootstrap policy.
    for _ in $(seq 1 120); do
        kubectl --kubeconfig /etc/kubernetes/controller-manager.conf get --raw /readyz \
            >/dev/null 2>&1 && break
        sleep 1
    done
    start kube-controller-manager kube-controller-manager \
        --kubeconfig /etc/kubernetes/controller-manager.conf \
        --authentication-kubeconfig /etc/kubernetes/controller-manager.conf \
        --authorization-kubeconfig /etc/kubernetes/controller-manager.conf \
        --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --service-cluster-ip-range 10.96.0.0/16 --cluster-name kvstore-local
    start kube-scheduler kube-scheduler --kubeconfig /etc/kubernetes/scheduler.conf \
        --authentication-kubeconfig /etc/kubernetes/scheduler.conf \
        --authorization-kubeconfig /etc/kubernetes/scheduler.conf \
        --bind-address 127.0.0.1 --leader-elect=false
else
    # Pod network: each pod a point-to-point link to the node (ptp), addresses from a static
    # range per node, so all pod traffic is routed by the node (and seen by kube-proxy's
    # rules); the other nodes' ranges are routed through their containers. Pod traffic leaving for
    # anything else is masqueraded behind the node's address (rules in this netns only).
    mkdir -p /etc/cni/net.d
    sed "s#@POD_CIDR@#$POD_CIDR#" /etc/kvstore/10-ptp.conflist > /etc/cni/net.d/10-ptp.conflist
    iptables -t nat -A POSTROUTING -s "$POD_CIDR" ! -d 10.244.0.0/16 -j MASQUERADE
    # A Service address kube-proxy has no rule for (a deleted Service) is refused here
    # rather than routed out of the node to whatever answers beyond the host.
    iptables -A FORWARD -d 10.96.0.0/16 -j REJECT
    start containerd containerd --config /etc/containerd/config.toml
    for _ in $(seq 1 100); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done
    start kubelet kubelet --config /etc/kvstore/kubelet.yaml \
        --kubeconfig /etc/kubernetes/kubelet.conf \
        --hostname-override "$NODE_NAME" --node-ip "$(hostname -i | awk '{print $1}')" \
        --node-labels "topology.kubernetes.io/zone=$NODE_ZONE"
    start kube-proxy kube-proxy --config /etc/kvstore/kube-proxy.yaml --hostname-override "$NODE_NAME"
    # NetworkPolicy: kube-router's firewall only (the routes and Services are done above).
    # It finds its node by name at start, so it waits for kubelet to register the node.
    kube_router() {
        until kubectl --kubeconfig /etc/kubernetes/kube-router.conf get node "$NODE_NAME" \
            >/dev/null 2>&1; do sleep 1; done
        exec kube-router --run-firewall=true --run-router=false --run-service-proxy=false \
            --enable-cni=false --hostname-override "$NODE_NAME" \
            --kubeconfig /etc/kubernetes/kube-router.conf
    }
    start kube-router kube_router
fi

# Stay up while the components run; a component that exits takes the node down, so that
# `status` and `docker ps` show the failure instead of a half-working node.
wait -n
log "a component exited; see /var/log/kvstore"
exit 1
