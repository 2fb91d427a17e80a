"""Durable storage: the write-ahead log, snapshot files and the MVCC state machine."""
