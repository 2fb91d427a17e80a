"""kvstore: a Raft-replicated key-value store with an etcd v3 compatible gRPC API.

Packages, from the inside out:

- ``kvstore.raft``: the consensus algorithm as a pure state machine (no I/O, no clocks).
- ``kvstore.storage``: the write-ahead log, snapshots and the MVCC key-value state machine.
- ``kvstore.server``: the asyncio gRPC server that drives Raft and serves the etcd v3 API.
"""

__version__ = "0.1.0"
