"""Checking what a cluster did against what it promised.

``history`` records operations as clients saw them (invocation, completion, or an unknown
outcome after a timeout); ``linearizability`` decides whether a history of register
operations on independent keys could have come from one atomic copy of the data.
Used by the fault-injection tests and reusable by anyone who records a history.
"""

from kvstore.verify.history import History, Op, OpKind
from kvstore.verify.linearizability import CheckResult, check_history, check_key

__all__ = ["CheckResult", "History", "Op", "OpKind", "check_history", "check_key"]
