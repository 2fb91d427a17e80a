"""The Raft consensus core: a pure state machine driven by messages and ticks.

It imports nothing that touches the outside world (no sockets, files, clocks or threads);
``tests/kvstore/test_raft_purity.py`` enforces the rule.
"""
