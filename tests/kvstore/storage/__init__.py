"""Tests of kvstore.storage: the WAL, snapshot files, DiskStorage and the MVCC store."""
