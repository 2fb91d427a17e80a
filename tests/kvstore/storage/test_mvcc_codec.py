"""Property tests of the request encoding the server puts in Raft entries: every request
round-trips, and arbitrary bytes decode or fail with InvalidRequestError, nothing else."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.storage.errors import InvalidRequestError
from kvstore.storage.mvcc_codec import decode_request, encode_request
from kvstore.storage.mvcc_types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    RangeRequest,
    Request,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
)

i64 = st.integers(-(2**63), 2**63 - 1)
blob = st.binary(max_size=20)

ranges = st.builds(
    RangeRequest,
    blob,
    blob,
    i64,
    i64,
    st.sampled_from(SortOrder),
    st.sampled_from(SortTarget),
    st.booleans(),
    st.booleans(),
    i64,
    i64,
    i64,
    i64,
)
puts = st.builds(PutRequest, blob, blob, i64, st.booleans(), st.booleans(), st.booleans())
deletes = st.builds(DeleteRangeRequest, blob, blob, st.booleans())
compares = st.one_of(
    st.builds(
        Compare, blob, st.just(CompareTarget.VALUE), st.sampled_from(CompareResult), blob, blob
    ),
    st.builds(
        Compare,
        blob,
        st.sampled_from([t for t in CompareTarget if t != CompareTarget.VALUE]),
        st.sampled_from(CompareResult),
        i64,
        blob,
    ),
)
ops: st.SearchStrategy[RequestOp] = st.recursive(
    st.one_of(ranges, puts, deletes),
    lambda inner: st.builds(
        TxnRequest,
        st.lists(compares, max_size=3).map(tuple),
        st.lists(inner, max_size=3).map(tuple),
        st.lists(inner, max_size=3).map(tuple),
    ),
    max_leaves=10,
)
requests: st.SearchStrategy[Request] = st.one_of(
    ops,
    st.builds(CompactionRequest, i64, st.booleans()),
    st.builds(LeaseGrantRequest, i64, i64),
    st.builds(LeaseRevokeRequest, i64),
)


@settings(deadline=None)  # timing varies on shared CI machines
@given(requests)
def test_requests_round_trip(req: Request) -> None:
    assert decode_request(encode_request(req)) == req


@settings(deadline=None)  # timing varies on shared CI machines
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    with contextlib.suppress(InvalidRequestError):
        decode_request(data)


@settings(deadline=None)  # timing varies on shared CI machines
@given(requests, st.data())
def test_truncated_encodings_are_rejected(req: Request, data: st.DataObject) -> None:
    raw = encode_request(req)
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        decode_request(raw[:cut])
    except InvalidRequestError:
        return
    raise AssertionError("a truncated request decoded")
