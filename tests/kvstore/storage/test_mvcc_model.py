"""The MVCC store against a deliberately naive reference model (a dict of key -> list of
(revision, value or None for a delete)), over random sequences of put, delete, txn,
compaction, range at a past revision and snapshot/restore."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.storage.errors import CompactedError, FutureRevisionError, InvalidRequestError
from kvstore.storage.mvcc import ApplyResult, MvccStore
from kvstore.storage.mvcc_codec import encode_request
from kvstore.storage.mvcc_types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    Event,
    KeyValue,
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
    hist: dict[bytes, list[tuple[int, bytes | None]]] = field(default_factory=dict)

    def get(self, key: bytes, at: int) -> KeyValue | None:
        seen = [(r, v) for r, v in self.hist.get(key, []) if r <= at]
        if not seen or seen[-1][1] is None:
            return None
        life: list[tuple[int, bytes | None]] = []
        for r, v in seen:
            life = [] if v is None else [*life, (r, v)]
        value = life[-1][1]
        assert value is not None
        return KeyValue(key, life[0][0], life[-1][0], len(life), value)

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

    def write(self, puts: list[tuple[bytes, bytes]], dels: list[tuple[bytes, bytes]]) -> None:
        """Apply puts and deletes as one revision (only if something changes)."""
        changed: list[tuple[bytes, bytes | None]] = list(puts)
        for key, end in dels:
            changed += [(kv.key, None) for kv in self.range(key, end, self.rev)]
        if not changed:
            return
        self.rev += 1
        for k, v in changed:
            self.hist.setdefault(k, []).append((self.rev, v))

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
puts = st.tuples(st.just("put"), keys, values)
dels = st.tuples(st.just("del"), keys, st.sampled_from(ENDS))
compacts = st.tuples(st.just("compact"), st.integers(-1, 6))
ranges = st.tuples(st.just("range"), keys, st.sampled_from(ENDS), st.integers(-1, 8))
snaps = st.tuples(st.just("snapshot"))
int_targets = st.sampled_from([CompareTarget.VERSION, CompareTarget.CREATE, CompareTarget.MOD])
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
ops = st.lists(st.one_of(puts, puts, dels, txns, txns, compacts, ranges, snaps), max_size=40)


def check_all(store: MvccStore, model: Model, emitted: list[Event]) -> None:
    assert store.revision == model.rev
    got = store.range(RangeRequest(b"\0", b"\0")).kvs
    assert list(got) == model.range(b"\0", b"\0", model.rev)
    assert len(store) == len(got)
    start = model.compacted + 1
    replayed = store.events_since(start, b"\0", b"\0")
    assert replayed == [e for e in emitted if e.kv.mod_revision >= start], "watch history"


@settings(max_examples=300, deadline=None)
@given(ops)
def test_store_matches_the_reference_model(program: list[tuple[object, ...]]) -> None:
    store, model = MvccStore(), Model()
    emitted: list[Event] = []
    for op in program:
        kind = op[0]
        if kind == "put":
            _, key, value = op
            assert isinstance(key, bytes) and isinstance(value, bytes)
            res = store.apply(encode_request(PutRequest(key, value)))
            model.write([(key, value)], [])
            assert res.error is None and [e.kv for e in res.events] == [model.get(key, model.rev)]
        elif kind == "del":
            _, key, end = op
            assert isinstance(key, bytes) and isinstance(end, bytes)
            before = model.range(key, end, model.rev)
            res = store.apply(encode_request(DeleteRangeRequest(key, end, prev_kv=True)))
            model.write([], [(key, end)])
            assert res.response is not None and not res.error
            assert [e.prev_kv for e in res.events] == before
        elif kind == "compact":
            back = op[1]
            assert isinstance(back, int)
            at = model.rev - back
            res = store.apply(encode_request_compact(at))
            expected = (
                CompactedError
                if at <= model.compacted
                else FutureRevisionError
                if at > model.rev
                else None
            )
            if expected is None:
                model.compacted = at
                assert res.error is None
            else:
                assert isinstance(res.error, expected)
        elif kind == "range":
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
        elif kind == "snapshot":
            restored = MvccStore()
            restored.restore(store.snapshot())
            assert restored.hash_kv() == store.hash_kv()
            assert restored.db_size == store.db_size
            store = restored
            res = ApplyResult(store.revision)
        else:
            res = run_txn(store, model, op)
        emitted.extend(res.events)
        check_all(store, model, emitted)


def encode_request_compact(at: int) -> bytes:
    return encode_request(CompactionRequest(at))


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
