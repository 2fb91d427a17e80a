"""The MVCC store against a deliberately naive reference model (a dict of key -> list of
(revision, value or None for a delete, lease)), over random sequences of put (with and
without a lease), delete, txn, compaction, range at a past revision, lease grant and
revoke, and snapshot/restore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.storage.errors import (
    CompactedError,
    FutureRevisionError,
    InvalidRequestError,
    LeaseExistsError,
    LeaseNotFoundError,
)
from kvstore.storage.mvcc import ApplyResult, MvccStore, SnapshotEncoder
from kvstore.storage.mvcc_codec import encode_request
from kvstore.storage.mvcc_types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    Event,
    KeyValue,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    RangeRequest,
    RangeResponse,
    Request,
    TxnRequest,
    TxnResponse,
)

KEYS = [b"a", b"b", b"ba", b"c", b"d"]
ENDS = [b"", b"\0", b"b", b"c", b"e"]


def in_model_range(k: bytes, key: bytes, end: bytes) -> bool:
    if end == b"":
        return k == key
    if end == b"\0":
        return k >= key
    return key <= k < end


@dataclass
class Model:
    rev: int = 1
    compacted: int = 0
    hist: dict[bytes, list[tuple[int, bytes | None, int]]] = field(default_factory=dict)
    leases: set[int] = field(default_factory=set)

    def get(self, key: bytes, at: int) -> KeyValue | None:
        seen = [h for h in self.hist.get(key, []) if h[0] <= at]
        if not seen or seen[-1][1] is None:
            return None
        life: list[tuple[int, bytes | None, int]] = []
        for h in seen:
            life = [] if h[1] is None else [*life, h]
        rev, value, lease = life[-1]
        assert value is not None
        return KeyValue(key, life[0][0], rev, len(life), value, lease)

    def range(self, key: bytes, end: bytes, at: int) -> list[KeyValue]:
        out = [self.get(k, at) for k in sorted(self.hist) if in_model_range(k, key, end)]
        return [kv for kv in out if kv is not None]

    def check_revision(self, at: int) -> int | Exception:
        if at <= 0:
            return self.rev
        if at < self.compacted:
            return CompactedError(at, self.compacted)
        if at > self.rev:
            return FutureRevisionError(at, self.rev)
        return at

    def write(
        self,
        puts: list[tuple[bytes, bytes]],
        dels: list[tuple[bytes, bytes]],
        lease: int = 0,
        deleted: list[bytes] | None = None,
    ) -> None:
        """Apply puts (with ``lease``) and deletes (ranges, or the keys in ``deleted``) as
        one revision, only if something changes."""
        changed: list[tuple[bytes, bytes | None, int]] = [(k, v, lease) for k, v in puts]
        for key, end in dels:
            changed += [(kv.key, None, 0) for kv in self.range(key, end, self.rev)]
        changed += [(k, None, 0) for k in deleted or []]
        if not changed:
            return
        self.rev += 1
        for k, v, lease_id in changed:
            self.hist.setdefault(k, []).append((self.rev, v, lease_id))

    def keys_with_lease(self, lease: int) -> list[bytes]:
        return [kv.key for kv in self.range(b"\0", b"\0", self.rev) if kv.lease == lease]

    def compare(
        self, key: bytes, target: CompareTarget, op: int | bytes, res: CompareResult
    ) -> bool:
        kv = self.get(key, self.rev)
        if kv is None:
            if target == CompareTarget.VALUE:
                return False
            kv = KeyValue(key)
        fields: dict[CompareTarget, int | bytes] = {
            CompareTarget.VERSION: kv.version,
            CompareTarget.CREATE: kv.create_revision,
            CompareTarget.MOD: kv.mod_revision,
            CompareTarget.VALUE: kv.value,
            CompareTarget.LEASE: kv.lease,
        }
        actual = fields[target]
        if res == CompareResult.EQUAL:
            return actual == op
        if res == CompareResult.NOT_EQUAL:
            return actual != op
        if res == CompareResult.GREATER:
            return actual > op  # type: ignore[operator]
        return actual < op  # type: ignore[operator]


keys = st.sampled_from(KEYS)
values = st.binary(max_size=3)
lease_ids = st.integers(1, 2)
puts = st.tuples(st.just("put"), keys, values, st.one_of(st.just(0), lease_ids))
grants = st.tuples(st.just("grant"), lease_ids)
revokes = st.tuples(st.just("revoke"), lease_ids)
dels = st.tuples(st.just("del"), keys, st.sampled_from(ENDS))
compacts = st.tuples(st.just("compact"), st.integers(-1, 6))
ranges = st.tuples(st.just("range"), keys, st.sampled_from(ENDS), st.integers(-1, 8))
snaps = st.tuples(st.just("snapshot"))
int_targets = st.sampled_from(
    [CompareTarget.VERSION, CompareTarget.CREATE, CompareTarget.MOD, CompareTarget.LEASE]
)
compares = st.one_of(
    st.tuples(keys, st.just(CompareTarget.VALUE), values),
    st.tuples(keys, int_targets, st.integers(0, 8)),
)
txns = st.tuples(
    st.just("txn"),
    compares,
    st.sampled_from(CompareResult),
    st.lists(st.tuples(keys, values), max_size=3),
    st.lists(st.tuples(keys, st.sampled_from(ENDS)), max_size=2),
    st.lists(st.tuples(keys, values), max_size=2),
)
ops = st.lists(
    st.one_of(puts, puts, dels, txns, txns, compacts, ranges, snaps, grants, revokes, revokes),
    max_size=40,
)


def check_all(store: MvccStore, model: Model, emitted: list[Event]) -> None:
    assert store.revision == model.rev
    got = store.range(RangeRequest(b"\0", b"\0")).kvs
    assert list(got) == model.range(b"\0", b"\0", model.rev)
    assert len(store) == len(got)
    start = model.compacted + 1
    replayed = store.events_since(start, b"\0", b"\0")
    assert replayed == [e for e in emitted if e.kv.mod_revision >= start], "watch history"


Step = Callable[[MvccStore, Model, tuple[object, ...]], ApplyResult]


def step_put(store: MvccStore, model: Model, op: tuple[object, ...]) -> ApplyResult:
    _, key, value, lease = op
    assert isinstance(key, bytes) and isinstance(value, bytes) and isinstance(lease, int)
    res = store.apply(encode_request(PutRequest(key, value, lease)))
    if lease and lease not in model.leases:
        assert isinstance(res.error, LeaseNotFoundError) and not res.events
    else:
        model.write([(key, value)], [], lease)
        assert res.error is None
        assert [e.kv for e in res.events] == [model.get(key, model.rev)]
    return res


def step_grant(store: MvccStore, model: Model, op: tuple[object, ...]) -> ApplyResult:
    lease = op[1]
    assert isinstance(lease, int)
    res = store.apply(encode_request(LeaseGrantRequest(lease, 30)))
    if lease in model.leases:
        assert isinstance(res.error, LeaseExistsError)
    else:
        assert res.error is None and not res.events
        model.leases.add(lease)
    return res


def step_revoke(store: MvccStore, model: Model, op: tuple[object, ...]) -> ApplyResult:
    lease = op[1]
    assert isinstance(lease, int)
    res = store.apply(encode_request(LeaseRevokeRequest(lease)))
    if lease not in model.leases:
        assert isinstance(res.error, LeaseNotFoundError)
    else:
        doomed = model.keys_with_lease(lease)
        model.write([], [], deleted=doomed)
        model.leases.discard(lease)
        assert res.error is None and [e.kv.key for e in res.events] == doomed
    return res


def step_delete(store: MvccStore, model: Model, op: tuple[object, ...]) -> ApplyResult:
    _, key, end = op
    assert isinstance(key, bytes) and isinstance(end, bytes)
    before = model.range(key, end, model.rev)
    res = store.apply(encode_request(DeleteRangeRequest(key, end, prev_kv=True)))
    model.write([], [(key, end)])
    assert res.response is not None and not res.error
    assert [e.prev_kv for e in res.events] == before
    return res


def step_compact(store: MvccStore, model: Model, op: tuple[object, ...]) -> ApplyResult:
    back = op[1]
    assert isinstance(back, int)
    at = model.rev - back
    res = store.apply(encode_request(CompactionRequest(at)))
    if at <= model.compacted:
        assert isinstance(res.error, CompactedError)
    elif at > model.rev:
        assert isinstance(res.error, FutureRevisionError)
    else:
        model.compacted = at
        assert res.error is None
    return res


def step_range(store: MvccStore, model: Model, op: tuple[object, ...]) -> ApplyResult:
    _, key, end, back = op
    assert isinstance(key, bytes) and isinstance(end, bytes) and isinstance(back, int)
    at = model.rev - back
    want = model.check_revision(at)
    res = store.apply(encode_request(RangeRequest(key, end, revision=at)))
    if isinstance(want, Exception):
        assert type(res.error) is type(want)
    else:
        assert isinstance(res.response, RangeResponse)
        assert list(res.response.kvs) == model.range(key, end, want)
        assert res.response.count == len(res.response.kvs)
    return res


STEPS: dict[str, Step] = {
    "put": step_put,
    "grant": step_grant,
    "revoke": step_revoke,
    "del": step_delete,
    "compact": step_compact,
    "range": step_range,
}


@settings(max_examples=500, deadline=None)
@given(ops)
def test_store_matches_the_reference_model(program: list[tuple[object, ...]]) -> None:
    store, model = MvccStore(), Model()
    emitted: list[Event] = []
    for op in program:
        kind = op[0]
        if kind == "snapshot":
            restored = MvccStore()
            restored.restore(store.snapshot())
            assert restored.hash_kv() == store.hash_kv()
            assert restored.db_size == store.db_size
            assert restored.leases() == store.leases()
            store = restored
            res = ApplyResult(store.revision)
        elif kind == "txn":
            res = run_txn(store, model, op)
        else:
            assert isinstance(kind, str)
            res = STEPS[kind](store, model, op)
        emitted.extend(res.events)
        check_all(store, model, emitted)


def run_txn(store: MvccStore, model: Model, op: tuple[object, ...]) -> ApplyResult:
    _, cmp, result, then_puts, then_dels, else_puts = op
    assert isinstance(cmp, tuple) and isinstance(result, CompareResult)
    key, target, operand = cmp
    assert isinstance(then_puts, list) and isinstance(then_dels, list)
    assert isinstance(else_puts, list)
    success: list[Request] = [PutRequest(k, v) for k, v in then_puts]
    success += [DeleteRangeRequest(k, e) for k, e in then_dels]
    success.append(RangeRequest(b"\0", b"\0"))
    req = TxnRequest(
        (Compare(key, target, result, operand),),
        tuple(success),  # type: ignore[arg-type]
        tuple(PutRequest(k, v) for k, v in else_puts),
    )
    ok = model.compare(key, target, operand, result)
    chosen_puts = then_puts if ok else else_puts
    chosen_dels = then_dels if ok else []
    put_keys = [k for k, _ in chosen_puts]
    dup = len(set(put_keys)) != len(put_keys) or any(
        in_model_range(k, dk, de) for k in put_keys for dk, de in chosen_dels
    )
    rev_before = model.rev
    res = store.apply(encode_request(req))
    if dup:
        assert isinstance(res.error, InvalidRequestError)
        return res
    model.write(list(chosen_puts), list(chosen_dels))
    assert res.error is None and isinstance(res.response, TxnResponse)
    assert res.response.succeeded == ok
    assert all(e.kv.mod_revision == model.rev for e in res.events)
    assert (model.rev == rev_before) == (not res.events)
    if ok:
        last = res.response.responses[-1]
        assert isinstance(last, RangeResponse)
        assert list(last.kvs) == model.range(b"\0", b"\0", model.rev), "a txn sees its writes"
    return res


def run_with_encoder(
    program: list[tuple[object, ...]], open_at: int | None
) -> tuple[bytes, bytes, bytes]:
    """Run ``program`` against the store and the model; with ``open_at``, open a snapshot
    encoder before that op and encode one key after each later op. Returns the store's
    final snapshot, the encoder's output and the snapshot taken when it was opened."""
    store, model = MvccStore(), Model()
    emitted: list[Event] = []
    encoder: SnapshotEncoder | None = None
    expected = b""
    for i, op in enumerate(program):
        if i == open_at:
            expected = store.snapshot()
            encoder = SnapshotEncoder(store)
        kind = op[0]
        if kind != "snapshot":
            res = run_txn(store, model, op) if kind == "txn" else STEPS[str(kind)](store, model, op)
            emitted.extend(res.events)
            # Reads (ranges at old revisions included) cannot tell an encoder is open.
            check_all(store, model, emitted)
        if encoder is not None:
            encoder.encode(1)
    encoded = b""
    if encoder is not None:
        while not encoder.encode(1):
            pass
        encoded = encoder.finish()
        check_all(store, model, emitted)
    return store.snapshot(), encoded, expected


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(0, 12))
def test_a_snapshot_encoded_a_key_at_a_time_is_the_state_it_was_opened_on(
    program: list[tuple[object, ...]], open_at: int
) -> None:
    """Writes, deletes, lease changes and compactions go on while the encoder works; its
    output is the state when it was opened, and once it is done the store is what it would
    have been without it (compactions deferred for it have run)."""
    final, encoded, expected = run_with_encoder(program, open_at)
    if open_at < len(program):
        assert encoded == expected
    assert final == run_with_encoder(program, None)[0]
