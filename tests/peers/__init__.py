"""The ``peers`` test group: etcd clients' own test suites, run against this store and
against etcd, compared test by test (docs/compatibility.md)."""
