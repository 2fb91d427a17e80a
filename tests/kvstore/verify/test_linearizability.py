"""The linearizability checker, on histories whose verdict is known by construction."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.verify import History, Op, OpKind, check_history, check_key


def w(client: int, t0: float, t1: float | None, value: str, key: str = "k") -> Op:
    return Op(client, OpKind.WRITE, key, t0, t1, value=value)


def r(client: int, t0: float, t1: float | None, value: str | None, key: str = "k") -> Op:
    return Op(client, OpKind.READ, key, t0, t1, value=value)


def cas(client: int, t0: float, t1: float | None, exp: str | None, new: str, ok: bool | None) -> Op:
    return Op(client, OpKind.CAS, "k", t0, t1, value=new, expected=exp, ok=ok)


def test_sequential_history_is_linearizable() -> None:
    ops = [w(1, 0, 1, "a"), r(2, 2, 3, "a"), w(1, 4, 5, "b"), r(2, 6, 7, "b")]
    assert check_key(ops).linearizable is True


def test_classic_stale_read_is_caught() -> None:
    # Both writes finished before the read began, yet it returned the older value: what a
    # follower serving reads from its own state, without ReadIndex, can do.
    ops = [w(1, 0, 1, "a"), w(1, 2, 3, "b"), r(2, 4, 5, "a")]
    result = check_key(ops, "k")
    assert result.linearizable is False
    assert "read() = 'a'" in result.detail


def test_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in ("a", "b"):
        ops = [w(1, 0, 1, "a"), w(1, 2, 6, "b"), r(2, 3, 4, seen)]
        assert check_key(ops).linearizable is True, seen


def test_reads_cannot_go_back_in_time() -> None:
    # Two sequential reads during one long write: new then old is impossible.
    ops = [w(1, 0, 1, "a"), w(1, 2, 10, "b"), r(2, 3, 4, "b"), r(2, 5, 6, "a")]
    assert check_key(ops).linearizable is False


def test_a_value_nobody_wrote_is_not_linearizable() -> None:
    assert check_key([w(1, 0, 1, "a"), r(2, 2, 3, "zzz")]).linearizable is False


def test_absent_key_reads_none_until_written() -> None:
    assert check_key([r(1, 0, 1, None), w(2, 2, 3, "a")]).linearizable is True
    assert check_key([w(2, 0, 1, "a"), r(1, 2, 3, None)]).linearizable is False


def test_write_with_unknown_outcome_may_or_may_not_have_happened() -> None:
    lost = w(1, 0, None, "x")
    assert check_key([lost, r(2, 5, 6, "x")]).linearizable is True
    assert check_key([lost, r(2, 5, 6, None)]).linearizable is True
    # ...but once seen it cannot be unseen.
    assert check_key([lost, r(2, 5, 6, "x"), r(2, 7, 8, None)]).linearizable is False


def test_cas_results_must_match_the_register() -> None:
    assert check_key([w(1, 0, 1, "a"), cas(2, 2, 3, "a", "b", True), r(1, 4, 5, "b")]).linearizable
    assert check_key([w(1, 0, 1, "a"), cas(2, 2, 3, "a", "b", False)]).linearizable is False
    assert check_key([w(1, 0, 1, "a"), cas(2, 2, 3, "z", "b", True)]).linearizable is False
    # Two clients both "winning" the same compare-and-set is the lost-update anomaly.
    both = [w(1, 0, 1, "a"), cas(2, 2, 5, "a", "b", True), cas(3, 2, 5, "a", "c", True)]
    assert check_key(both).linearizable is False


def test_cas_with_unknown_outcome_is_either() -> None:
    pending = cas(2, 2, None, "a", "b", None)
    assert check_key([w(1, 0, 1, "a"), pending, r(3, 9, 10, "b")]).linearizable is True
    assert check_key([w(1, 0, 1, "a"), pending, r(3, 9, 10, "a")]).linearizable is True


def test_keys_are_checked_independently() -> None:
    history = History(
        [w(1, 0, 1, "a", "x"), r(2, 2, 3, "a", "x"), w(1, 0, 1, "a", "y"), r(2, 2, 3, "b", "y")]
    )
    results = check_history(history)
    assert [(res.key, res.linearizable) for res in results] == [("y", False), ("x", True)]


def test_search_budget_gives_unknown_not_a_verdict() -> None:
    ops = [w(i, 0, 100, str(i)) for i in range(12)] + [r(99, 200, 201, "zzz")]
    assert check_key(ops, max_steps=50).linearizable is None


def test_history_round_trips_through_json(tmp_path: Path) -> None:
    history = History([w(1, 0.5, 1.5, "a"), cas(2, 2, None, "a", "b", None)], {"seed": 7})
    history.save(tmp_path / "h.json")
    loaded = History.load(tmp_path / "h.json")
    assert loaded.ops == history.ops
    assert loaded.meta == {"seed": 7}


def linear_execution(seed: int, n_ops: int, clients: int) -> list[Op]:
    """A history produced by a truly atomic register: each op takes effect at a distinct
    instant inside its [invoked, completed] interval, so it must be linearizable."""
    rng = random.Random(seed)
    value: str | None = None
    ops = []
    for i in range(n_ops):
        point = float(i)
        t0, t1 = point - rng.uniform(0, clients), point + rng.uniform(0, clients)
        kind = rng.choice(list(OpKind))
        if kind is OpKind.WRITE:
            value = f"v{i}"
            ops.append(w(i % clients, t0, t1, value))
        elif kind is OpKind.READ:
            ops.append(r(i % clients, t0, t1, value))
        else:
            expected = rng.choice([value, f"v{rng.randrange(i + 1)}"])
            swapped = expected == value
            if swapped:
                value = f"c{i}"
            ops.append(cas(i % clients, t0, t1, expected, f"c{i}", swapped))
    return ops


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60), st.integers(1, 6))
def test_every_atomic_execution_is_linearizable(seed: int, n_ops: int, clients: int) -> None:
    assert check_key(linear_execution(seed, n_ops, clients)).linearizable is True


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 60))
def test_a_corrupted_read_is_always_caught(seed: int, n_ops: int) -> None:
    ops = linear_execution(seed, n_ops, clients=3)
    reads = [i for i, op in enumerate(ops) if op.kind is OpKind.READ]
    if not reads:
        ops.append(r(0, n_ops + 10.0, n_ops + 11.0, "never-written"))
    else:
        i = random.Random(seed).choice(reads)
        ops[i] = r(ops[i].client, ops[i].invoked, ops[i].completed, "never-written")
    assert check_key(ops).linearizable is False


def test_a_long_concurrent_history_checks() -> None:
    ops = linear_execution(seed=1, n_ops=3000, clients=8)
    assert check_key(ops).linearizable is True
