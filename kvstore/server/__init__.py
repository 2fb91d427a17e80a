"""The server: drives the Raft core over gRPC and serves the etcd v3 API."""
