"""The wire codec: exact round trips, deterministic bytes, loud failures on bad input."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.raft import CodecError
from kvstore.raft.codec import (
    VERSION,
    decode_conf_change,
    decode_entry,
    decode_hard_state,
    decode_message,
    decode_snapshot,
    encode_conf_change,
    encode_entry,
    encode_hard_state,
    encode_message,
    encode_snapshot,
)
from kvstore.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=2**20)
blobs = st.binary(max_size=64)
ids = st.frozensets(st.integers(min_value=1, max_value=2**64 - 1), max_size=6)

entries = st.builds(Entry, term=u64, index=u64, type=st.sampled_from(EntryType), data=blobs)
conf_states = st.builds(ConfState, voters=ids, learners=ids)
snapshots = st.builds(
    Snapshot,
    metadata=st.builds(SnapshotMetadata, index=u64, term=u64, conf_state=conf_states),
    data=blobs,
)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    to=u64,
    from_=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=5).map(tuple),
    commit=u64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=u64,
    context=blobs,
)
conf_changes = st.builds(
    ConfChange, type=st.sampled_from(ConfChangeType), node_id=u64, context=blobs
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_message_round_trip(m: Message) -> None:
    data = encode_message(m)
    assert decode_message(data) == m
    assert encode_message(decode_message(data)) == data  # deterministic


@settings(deadline=None)
@given(conf_changes)
def test_conf_change_round_trip(cc: ConfChange) -> None:
    assert decode_conf_change(encode_conf_change(cc)) == cc


@settings(deadline=None)
@given(entries)
def test_entry_round_trip(e: Entry) -> None:
    assert decode_entry(encode_entry(e)) == e


@settings(deadline=None)
@given(st.builds(HardState, term=u64, vote=u64, commit=u64))
def test_hard_state_round_trip(hs: HardState) -> None:
    assert decode_hard_state(encode_hard_state(hs)) == hs


@settings(deadline=None)
@given(snapshots)
def test_snapshot_round_trip(s: Snapshot) -> None:
    assert decode_snapshot(encode_snapshot(s)) == s


@settings(deadline=None)
@given(messages, st.data())
def test_every_truncation_is_rejected(m: Message, data: st.DataObject) -> None:
    raw = encode_message(m)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(CodecError):
        decode_message(raw[:cut])


@settings(deadline=None)
@given(messages, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(m: Message, extra: bytes) -> None:
    with pytest.raises(CodecError, match="trailing"):
        decode_message(encode_message(m) + extra)


def test_the_set_encoding_is_independent_of_iteration_order() -> None:
    a = ConfState(voters=frozenset([3, 1, 2]))
    b = ConfState(voters=frozenset([2, 3, 1]))
    snap = SnapshotMetadata(5, 2, a), SnapshotMetadata(5, 2, b)
    assert encode_snapshot(Snapshot(snap[0])) == encode_snapshot(Snapshot(snap[1]))


def test_the_layout_is_stable() -> None:
    """A fixed vector: changing the layout without bumping VERSION breaks this."""
    m = Message(MessageType.APP, to=2, from_=1, term=3, index=4, log_term=3, commit=4)
    raw = encode_message(m)
    assert raw[0] == VERSION == 1
    assert raw[1] == MessageType.APP
    assert struct.unpack_from(">QQQ", raw, 2) == (2, 1, 3)
    assert len(raw) == 1 + 1 + 8 * 6 + 1 + 8 + 4 + 4 + 1
    assert raw.hex() == (
        "0103"
        "0000000000000002"
        "0000000000000001"
        "0000000000000003"
        "0000000000000003"
        "0000000000000004"
        "0000000000000004"
        "00"
        "0000000000000000"
        "00000000"
        "00000000"
        "00"
    )


def test_another_version_is_refused() -> None:
    raw = bytearray(encode_message(Message(MessageType.HEARTBEAT, to=1, from_=2, term=1)))
    raw[0] = VERSION + 1
    with pytest.raises(CodecError, match="version"):
        decode_message(bytes(raw))
    cc = bytearray(encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4)))
    cc[0] = 0
    with pytest.raises(CodecError, match="version"):
        decode_conf_change(bytes(cc))


def test_unknown_enum_values_are_refused() -> None:
    raw = bytearray(encode_message(Message(MessageType.HEARTBEAT)))
    raw[1] = 200
    with pytest.raises(CodecError, match="MessageType"):
        decode_message(bytes(raw))
    cc = bytearray(encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4)))
    cc[1] = 9
    with pytest.raises(CodecError, match="ConfChangeType"):
        decode_conf_change(bytes(cc))


def test_an_absurd_entry_count_fails_fast() -> None:
    raw = bytearray(encode_message(Message(MessageType.APP)))
    count_at = 1 + 1 + 8 * 6 + 1 + 8 + 4
    raw[count_at : count_at + 4] = struct.pack(">I", 2**32 - 1)
    with pytest.raises(CodecError, match="entry count"):
        decode_message(bytes(raw))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    """Peer input is untrusted: garbage must fail with CodecError and nothing else."""
    for decode in (decode_message, decode_conf_change, decode_entry, decode_snapshot):
        with contextlib.suppress(CodecError):
            decode(data)


@settings(deadline=None)
@given(messages, st.data())
def test_flipped_bytes_never_crash_the_decoder(m: Message, data: st.DataObject) -> None:
    raw = bytearray(encode_message(m))
    i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    with contextlib.suppress(CodecError):
        decode_message(bytes(raw))
