"""Single-server membership changes applied to a ProgressTracker.

Only one voter is added or removed per change, so any majority of the old configuration
overlaps any majority of the new one and no joint consensus is needed (Ongaro's thesis,
§4.2). The leader additionally allows at most one unapplied change in its log, and none
until an entry of its own term is committed (``Raft`` enforces both), which closes the
known gap of single-server changes across leader changes.
"""

from __future__ import annotations

from .errors import ConfigError
from .progress import ProgressTracker
from .types import ConfChange, ConfChangeType, ConfState


def conf_state(tracker: ProgressTracker) -> ConfState:
    """The tracker's membership as a value."""
    return ConfState(voters=frozenset(tracker.voters), learners=frozenset(tracker.learners))


def validate(tracker: ProgressTracker, cc: ConfChange) -> None:
    """Raise ConfigError for a change that is not allowed.

    Demoting a voter straight to learner and removing the last voter are refused; adding an
    existing voter or removing a non-member is a harmless no-op.
    """
    if cc.node_id <= 0:
        raise ConfigError(f"invalid node id {cc.node_id}")
    if cc.type == ConfChangeType.ADD_LEARNER and cc.node_id in tracker.voters:
        raise ConfigError(f"node {cc.node_id} is a voter; remove it before adding it as learner")
    if cc.type == ConfChangeType.REMOVE_NODE and tracker.voters == {cc.node_id}:
        raise ConfigError("cannot remove the last voter")


def apply(tracker: ProgressTracker, cc: ConfChange, next_index: int) -> ConfState:
    """Apply ``cc`` to ``tracker`` (validated first); new members start probing at
    ``next_index``. Returns the resulting membership."""
    validate(tracker, cc)
    nid = cc.node_id
    if cc.type == ConfChangeType.ADD_NODE:
        tracker.learners.discard(nid)
        tracker.voters.add(nid)
        pr = tracker.progress.get(nid)
        if pr is None:
            tracker.progress[nid] = tracker.new_progress(next_index, is_learner=False)
        else:
            pr.is_learner = False
    elif cc.type == ConfChangeType.ADD_LEARNER:
        if nid not in tracker.learners:
            tracker.learners.add(nid)
            tracker.progress[nid] = tracker.new_progress(next_index, is_learner=True)
    else:
        tracker.voters.discard(nid)
        tracker.learners.discard(nid)
        tracker.progress.pop(nid, None)
        tracker.votes.pop(nid, None)
    return conf_state(tracker)


def restore(tracker: ProgressTracker, cs: ConfState, next_index: int) -> None:
    """Reset ``tracker`` to the membership ``cs`` (at start-up or from a snapshot)."""
    tracker.voters = set(cs.voters)
    tracker.learners = set(cs.learners) - tracker.voters
    tracker.progress = {
        nid: tracker.new_progress(next_index, is_learner=nid in tracker.learners)
        for nid in tracker.voters | tracker.learners
    }
    tracker.votes = {}
