"""The etcd version this store answers to: the release whose client-visible behaviour it
implements, reported by Status, Snapshot and ``/version``.

Clients switch features on by this number: kube-apiserver, for one, uses
RequestWatchProgress for consistent reads from its watch cache only against 3.5.13 or
later, the first release whose progress notifications wait until every watcher of the
stream has caught up (see :mod:`kvstore.server.watch_service`). Raise it only together
with the behaviour the new release promises.
"""

ETCD_VERSION = "3.5.13"
ETCD_CLUSTER_VERSION = "3.5.0"
"""etcd reports the cluster version as major.minor.0."""
