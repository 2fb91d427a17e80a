"""The MVCC store's etcd semantics, case by case: revisions, versions, ranges, txn rules,
leases, compaction, events and history, hashing and snapshots."""

from __future__ import annotations

import pytest

from kvstore.storage.errors import (
    CompactedError,
    FutureRevisionError,
    InvalidRequestError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
)
from kvstore.storage.keys import prefix_end
from kvstore.storage.mvcc import MvccStore
from kvstore.storage.mvcc_codec import encode_request
from kvstore.storage.mvcc_types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    EventType,
    KeyValue,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    Request,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)


def put(s: MvccStore, key: bytes, value: bytes = b"v", **kw: object) -> PutResponse:
    res = s.execute(PutRequest(key, value, **kw))  # type: ignore[arg-type]
    assert isinstance(res.response, PutResponse)
    return res.response


def get(s: MvccStore, key: bytes, **kw: object) -> RangeResponse:
    return s.range(RangeRequest(key, **kw))  # type: ignore[arg-type]


def keys_of(resp: RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


def test_revisions_versions_and_tombstones() -> None:
    s = MvccStore()
    assert s.revision == 1
    put(s, b"k", b"1")
    put(s, b"k", b"2")
    assert get(s, b"k").kvs == (KeyValue(b"k", 2, 3, 2, b"2"),)
    res = s.execute(DeleteRangeRequest(b"k"))
    assert res.revision == 4 and get(s, b"k").kvs == ()
    assert s.execute(DeleteRangeRequest(b"k")).revision == 4, "deleting nothing: no revision"
    put(s, b"k", b"3")
    assert get(s, b"k").kvs == (KeyValue(b"k", 5, 5, 1, b"3"),), "recreated: new incarnation"
    assert get(s, b"k", revision=3).kvs == (KeyValue(b"k", 2, 3, 2, b"2"),)
    assert get(s, b"k", revision=4).kvs == ()
    with pytest.raises(FutureRevisionError):
        get(s, b"k", revision=6)


def test_range_end_rules_limit_count_and_sort() -> None:
    s = MvccStore()
    for k in (b"a", b"ab", b"abc", b"b", b"\xff", b"\xff\xff"):
        put(s, k, k[::-1])
    assert keys_of(get(s, b"a", range_end=prefix_end(b"a"))) == [b"a", b"ab", b"abc"]
    assert keys_of(get(s, b"b", range_end=b"\0")) == [b"b", b"\xff", b"\xff\xff"]
    assert keys_of(get(s, b"\xff", range_end=prefix_end(b"\xff"))) == [b"\xff", b"\xff\xff"]
    assert prefix_end(b"\xff\xff") == b"\0"
    assert len(get(s, b"\0", range_end=b"\0").kvs) == 6
    limited = get(s, b"a", range_end=b"\0", limit=2)
    assert keys_of(limited) == [b"a", b"ab"] and limited.more and limited.count == 6
    assert get(s, b"a", range_end=b"\0", count_only=True) == RangeResponse(count=6)
    assert all(kv.value == b"" for kv in get(s, b"a", range_end=b"\0", keys_only=True).kvs)
    desc = get(s, b"a", range_end=b"c", sort_order=SortOrder.DESCEND)
    assert keys_of(desc) == [b"b", b"abc", b"ab", b"a"]
    by_value = get(s, b"a", range_end=b"c", sort_target=SortTarget.VALUE)
    assert [kv.value for kv in by_value.kvs] == [b"a", b"b", b"ba", b"cba"]
    newest = get(
        s, b"a", range_end=b"\0", sort_target=SortTarget.MOD, sort_order=SortOrder.DESCEND, limit=1
    )
    assert keys_of(newest) == [b"\xff\xff"] and newest.more
    assert keys_of(get(s, b"a", range_end=b"\0", min_mod_revision=6)) == [b"\xff", b"\xff\xff"]


def test_put_options() -> None:
    s = MvccStore()
    assert put(s, b"k", b"1", prev_kv=True).prev_kv is None
    assert put(s, b"k", b"2", prev_kv=True).prev_kv == KeyValue(b"k", 2, 2, 1, b"1")
    s.execute(LeaseGrantRequest(7, 60))
    put(s, b"k", b"", lease=7, ignore_value=True)
    assert get(s, b"k").kvs[0].value == b"2" and get(s, b"k").kvs[0].lease == 7
    put(s, b"k", b"3", ignore_lease=True)
    assert get(s, b"k").kvs[0].lease == 7
    with pytest.raises(KeyNotFoundError):
        s.execute(PutRequest(b"missing", ignore_value=True))
    with pytest.raises(InvalidRequestError, match="value is provided"):
        s.execute(PutRequest(b"k", b"x", ignore_value=True))
    with pytest.raises(InvalidRequestError, match="lease is provided"):
        s.execute(PutRequest(b"k", lease=7, ignore_lease=True))
    with pytest.raises(LeaseNotFoundError):
        s.execute(PutRequest(b"k", lease=8))
    with pytest.raises(InvalidRequestError, match="key is not provided"):
        s.execute(PutRequest(b""))
    assert s.revision == 5, "rejected requests change nothing"


def test_txn_compares_branches_and_one_revision() -> None:
    s = MvccStore()
    put(s, b"a", b"1")
    txn = TxnRequest(
        compare=(
            Compare(b"a", CompareTarget.VALUE, CompareResult.EQUAL, b"1"),
            Compare(b"a", CompareTarget.VERSION, CompareResult.LESS, 2),
            Compare(b"zz", CompareTarget.CREATE, CompareResult.EQUAL, 0),
        ),
        success=(
            PutRequest(b"b", b"2"),
            DeleteRangeRequest(b"a", prev_kv=True),
            RangeRequest(b"a", range_end=b"\0"),
        ),
        failure=(PutRequest(b"c"),),
    )
    res = s.execute(txn)
    assert isinstance(res.response, TxnResponse) and res.response.succeeded
    _, del_r, range_r = res.response.responses
    assert isinstance(del_r, DeleteRangeResponse) and del_r.deleted == 1
    assert isinstance(range_r, RangeResponse) and keys_of(range_r) == [b"b"]
    assert res.revision == 3 and {e.kv.mod_revision for e in res.events} == {3}
    assert [e.type for e in res.events] == [EventType.PUT, EventType.DELETE]
    again = s.execute(txn)
    assert isinstance(again.response, TxnResponse) and not again.response.succeeded
    assert keys_of(get(s, b"c")) == [b"c"] and again.revision == 4


def test_read_only_txn_does_not_bump_the_revision() -> None:
    s = MvccStore()
    put(s, b"a")
    res = s.execute(TxnRequest(success=(RangeRequest(b"a"), DeleteRangeRequest(b"nothing"))))
    assert res.revision == 2 and res.events == ()


def test_compare_on_a_range_needs_every_key_and_value_compare_on_missing_fails() -> None:
    s = MvccStore()
    put(s, b"p/1", b"x")
    put(s, b"p/2", b"y")
    every = Compare(b"p/", CompareTarget.VALUE, CompareResult.GREATER, b"w", prefix_end(b"p/"))
    some = Compare(b"p/", CompareTarget.VALUE, CompareResult.EQUAL, b"x", prefix_end(b"p/"))
    missing = Compare(b"q", CompareTarget.VALUE, CompareResult.NOT_EQUAL, b"x")
    for cmp, expected in ((every, True), (some, False), (missing, False)):
        res = s.execute(TxnRequest(compare=(cmp,)))
        assert isinstance(res.response, TxnResponse) and res.response.succeeded is expected
    with pytest.raises(InvalidRequestError, match="wrong type"):
        s.execute(TxnRequest(compare=(Compare(b"q", CompareTarget.MOD, CompareResult.EQUAL, b""),)))


def test_nested_txn_compares_see_the_state_before_the_outer_txn() -> None:
    s = MvccStore()
    inner = TxnRequest(
        compare=(Compare(b"a", CompareTarget.VERSION, CompareResult.EQUAL, 0),),
        success=(PutRequest(b"inner", b"saw-no-a"),),
        failure=(PutRequest(b"inner", b"saw-a"),),
    )
    res = s.execute(TxnRequest(success=(PutRequest(b"a"), inner)))
    assert get(s, b"inner").kvs[0].value == b"saw-no-a"
    assert res.revision == 2 and len(res.events) == 2


@pytest.mark.parametrize(
    "ops",
    [
        (PutRequest(b"k", b"1"), PutRequest(b"k", b"2")),
        (PutRequest(b"k2"), DeleteRangeRequest(b"k", b"l")),
        (PutRequest(b"k"), TxnRequest(success=(PutRequest(b"k"),))),
    ],
)
def test_a_key_written_twice_in_one_txn_is_refused_atomically(ops: tuple[Request, ...]) -> None:
    s = MvccStore()
    put(s, b"k")
    with pytest.raises(InvalidRequestError, match="duplicate key"):
        s.execute(TxnRequest(success=ops))  # type: ignore[arg-type]
    assert s.revision == 2 and get(s, b"k").kvs[0].version == 1


def test_failing_op_inside_txn_leaves_no_partial_write() -> None:
    s = MvccStore()
    res = s.apply(encode_request(TxnRequest(success=(PutRequest(b"a"), PutRequest(b"b", lease=9)))))
    assert isinstance(res.error, LeaseNotFoundError)
    assert s.revision == 1 and get(s, b"a").kvs == ()


def test_leases_attach_and_revoke_deletes_under_one_revision() -> None:
    s = MvccStore()
    s.execute(LeaseGrantRequest(5, 10))
    with pytest.raises(LeaseExistsError):
        s.execute(LeaseGrantRequest(5, 10))
    put(s, b"x", lease=5)
    put(s, b"y", lease=5)
    put(s, b"z", lease=5)
    put(s, b"z")  # re-put without the lease detaches it
    assert s.lease(5).keys == (b"x", b"y")
    lease_cmp = Compare(b"x", CompareTarget.LEASE, CompareResult.EQUAL, 5)
    ok = s.execute(TxnRequest(compare=(lease_cmp,)))
    assert isinstance(ok.response, TxnResponse) and ok.response.succeeded
    res = s.execute(LeaseRevokeRequest(5))
    assert res.revision == 6 and [e.kv.key for e in res.events] == [b"x", b"y"]
    assert keys_of(get(s, b"\0", range_end=b"\0")) == [b"z"]
    with pytest.raises(LeaseNotFoundError):
        s.lease(5)


def test_compaction_rules() -> None:
    s = MvccStore()
    for i in range(5):
        put(s, b"k", str(i).encode())
    put(s, b"gone")
    s.execute(DeleteRangeRequest(b"gone"))
    size_before = s.db_size
    s.execute(CompactionRequest(7))
    assert s.db_size < size_before
    assert get(s, b"k", revision=7).kvs[0].value == b"4", "the compacted revision is readable"
    with pytest.raises(CompactedError):
        get(s, b"k", revision=6)
    with pytest.raises(CompactedError):
        s.compact(7)
    with pytest.raises(FutureRevisionError):
        s.compact(9)
    assert get(s, b"k").kvs[0] == KeyValue(b"k", 2, 6, 5, b"4"), "version survives compaction"
    s.execute(CompactionRequest(8))
    assert s.events_since(9, b"\0", b"\0") == [] and len(s._index) == 1
    assert s.events_since(8, b"\0", b"\0") == [], "served at the compacted revision"
    with pytest.raises(CompactedError):
        s.events_since(7, b"\0", b"\0")


def test_events_since_replays_history_for_watchers() -> None:
    s = MvccStore()
    put(s, b"a", b"1")
    put(s, b"b", b"1")
    put(s, b"a", b"2")
    s.execute(DeleteRangeRequest(b"a"))
    evs = s.events_since(3, b"a", b"c")
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in evs] == [
        (EventType.PUT, b"b", 3),
        (EventType.PUT, b"a", 4),
        (EventType.DELETE, b"a", 5),
    ]
    assert evs[2].prev_kv is not None and evs[2].prev_kv.value == b"2"
    s.compact(4)
    with pytest.raises(CompactedError):
        s.events_since(3, b"a")
    # At the compaction revision itself, as a Range there: what is left from it on.
    assert [(e.type, e.kv.mod_revision) for e in s.events_since(4, b"a")] == [
        (EventType.PUT, 4),
        (EventType.DELETE, 5),
    ]


def test_history_replays_a_txn_in_the_order_it_was_applied() -> None:
    s = MvccStore()
    res = s.execute(TxnRequest(success=(PutRequest(b"z"), PutRequest(b"a"), PutRequest(b"m"))))
    live = [e.kv.key for e in res.events]
    assert live == [b"z", b"a", b"m"]
    assert [e.kv.key for e in s.events_since(2, b"\0", b"\0")] == live
    restored = MvccStore()
    restored.restore(s.snapshot())
    assert [e.kv.key for e in restored.events_since(2, b"\0", b"\0")] == live


def test_apply_is_deterministic_and_errors_are_results() -> None:
    stores = [MvccStore(), MvccStore()]
    reqs: list[Request] = [
        PutRequest(b"a", b"1"),
        LeaseGrantRequest(3, 5),
        PutRequest(b"b", lease=3),
        PutRequest(b"c", lease=4),
        TxnRequest(success=(DeleteRangeRequest(b"a", b"\0"),)),
        CompactionRequest(3),
    ]
    for s in stores:
        for i, r in enumerate(reqs, start=1):
            s.apply(encode_request(r), index=i)
    assert stores[0].hash_kv() == stores[1].hash_kv()
    assert stores[0].applied_index == 6
    empty = stores[0].apply(b"", index=7)
    assert empty.error is None and empty.revision == stores[0].revision
    assert stores[0].applied_index == 7
    assert isinstance(stores[0].apply(b"\x01\x63junk").error, InvalidRequestError)
    assert stores[0].hash_kv(4)[1] == 4
    with pytest.raises(CompactedError):
        stores[0].hash_kv(2)


def test_hash_differs_when_state_differs() -> None:
    a, b = MvccStore(), MvccStore()
    put(a, b"k", b"1")
    put(b, b"k", b"2")
    assert a.hash_kv() != b.hash_kv()


def test_restore_rejects_damaged_snapshots_and_keeps_state() -> None:
    s = MvccStore()
    put(s, b"k")
    data = bytearray(s.snapshot())
    data[12] ^= 1
    other = MvccStore()
    put(other, b"mine")
    with pytest.raises(InvalidRequestError):
        other.restore(bytes(data))
    assert keys_of(get(other, b"mine")) == [b"mine"]
