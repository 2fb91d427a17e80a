"""Majority arithmetic over a set of voters, kept apart from any Raft state so it can be
compared against a naive version in tests."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping


class VoteResult(enum.Enum):
    """The outcome of an election so far."""

    PENDING = 0
    """Neither a majority of grants nor of rejections yet."""
    WON = 1
    LOST = 2


def majority(n: int) -> int:
    """The smallest number of voters that is a majority of ``n``."""
    return n // 2 + 1


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index that a majority of ``voters`` hold (per ``match``).

    Sorting the voters' match indexes in descending order, the majority-th one is held by at
    least a majority. With no voters nothing can commit, so the answer is "everything" as in
    an empty joint half; callers never have an empty voter set in practice.
    """
    if not voters:
        return 1 << 62
    idx = sorted((match.get(v, 0) for v in voters), reverse=True)
    return idx[majority(len(idx)) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Whether ``votes`` (granted or not, per voter) already decide an election."""
    if not voters:
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is True:
            granted += 1
        elif got is False:
            rejected += 1
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if granted + (len(voters) - granted - rejected) >= need:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Collection[int], active: Collection[int]) -> bool:
    """Whether the ``active`` ids include a majority of ``voters``."""
    return sum(1 for v in voters if v in active) >= majority(len(voters))
