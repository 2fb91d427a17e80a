"""Benchmarks of any etcd v3 endpoints (``kvstore bench``), and the comparison of this store
with etcd on one machine (``kvstore bench --compare``)."""
