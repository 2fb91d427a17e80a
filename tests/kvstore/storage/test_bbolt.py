"""The bbolt writer and reader: round trips, page layout, and refusal of damaged files.

Files this writer makes are also read by etcd's own bbolt (etcdctl snapshot status, which
runs bbolt's consistency check) in tests/kvstore/server/test_etcd_interop.py.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.storage import bbolt
from kvstore.storage.bbolt import BboltError, Bucket, Database, encode_db, read_db

PS = bbolt.PAGE_SIZE


def _plain(n: int, value_size: int = 8, key_size: int = 12) -> Bucket:
    return Bucket([(f"{i:0{key_size}}".encode(), bytes([i % 251]) * value_size) for i in range(n)])


def _as_data(b: Bucket) -> list[tuple[bytes, object]]:
    return [(k, _as_data(v) if isinstance(v, Bucket) else v) for k, v in b.items]


def _page_flags(data: bytes, pgid: int) -> int:
    return int(struct.unpack_from("<H", data, pgid * PS + 8)[0])


def _page_count(data: bytes, pgid: int) -> int:
    return int(struct.unpack_from("<H", data, pgid * PS + 10)[0])


def _depth(data: bytes, pgid: int) -> int:
    """Levels of the tree under ``pgid`` (1: a leaf), following first children."""
    depth = 1
    while _page_flags(data, pgid) & bbolt.BRANCH_PAGE:
        pgid = int(struct.unpack_from("<Q", data, pgid * PS + 16 + 8)[0])
        depth += 1
    return depth


def _root_of(data: bytes, name: bytes) -> int:
    """The root page of top-level bucket ``name`` (0 if inline)."""
    root = Database(data).meta.root
    count = _page_count(data, root)
    assert _page_flags(data, root) & bbolt.LEAF_PAGE, "a small root bucket is one leaf"
    for i in range(count):
        at = root * PS + 16 + i * 16
        _, pos, ksize, _ = struct.unpack_from("<IIII", data, at)
        if data[at + pos : at + pos + ksize] == name:
            return int(struct.unpack_from("<Q", data, at + pos + ksize)[0])
    raise AssertionError(f"no bucket {name!r}")


# -- round trips -----------------------------------------------------------------------

_keys = st.binary(min_size=1, max_size=24)
_values = st.one_of(
    st.binary(max_size=32),
    # Values of one to three pages, cheap to generate: a short pattern repeated.
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4), st.integers(1000, 3000)),
)
_bulk = st.builds(_plain, st.integers(0, 2000), st.integers(0, 40), st.integers(4, 30))
"""Buckets of many generated keys: several leaf pages and a branch level."""


def _bucket(children: st.SearchStrategy[Bucket]) -> st.SearchStrategy[Bucket]:
    entries = st.dictionaries(_keys, st.one_of(_values, children), max_size=8)
    return st.builds(
        lambda d, seq: Bucket(sorted(d.items()), seq), entries, st.integers(0, 2**64 - 1)
    )


_buckets = st.recursive(
    st.one_of(
        _bulk, st.builds(lambda d: Bucket(sorted(d.items())), st.dictionaries(_keys, _values))
    ),
    _bucket,
    max_leaves=4,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, _buckets, min_size=1, max_size=4))
def test_random_buckets_round_trip(top: dict[bytes, Bucket]) -> None:
    buckets = sorted(top.items())
    data = encode_db(buckets)
    assert len(data) % PS == 0
    db = Database(data)
    assert db.check() == []
    assert db.size == len(data)
    back = read_db(data)
    assert [(n, _as_data(b)) for n, b in back] == [(n, _as_data(b)) for n, b in buckets]


def test_large_values_span_overflow_pages() -> None:
    big = bytes(range(256)) * 80  # 20480 bytes: five pages and a bit
    data = encode_db([(b"b", Bucket([(b"a", b"x"), (b"big", big), (b"c", b"y")]))])
    assert Database(data).check() == []
    assert read_db(data) == [(b"b", Bucket([(b"a", b"x"), (b"big", big), (b"c", b"y")]))]
    root = _root_of(data, b"b")
    # One page cannot hold the value: its page carries an overflow count and the pages it
    # spans are accounted for.
    pages = []
    pgid = 3
    while pgid < len(data) // PS:
        overflow = struct.unpack_from("<I", data, pgid * PS + 12)[0]
        pages.append((pgid, overflow))
        pgid += overflow + 1
    assert any(o >= 5 for _, o in pages), pages
    assert root in {p for p, _ in pages}


def test_many_keys_make_a_tree_of_branch_pages() -> None:
    bucket = _plain(40_000, value_size=30, key_size=40)
    data = encode_db([(b"k", bucket)])
    assert Database(data).check() == []
    root = _root_of(data, b"k")
    assert _page_flags(data, root) & bbolt.BRANCH_PAGE
    assert _depth(data, root) == 3  # leaves, one branch level, the root branch
    ((name, back),) = read_db(data)
    assert name == b"k" and back.items == bucket.items


def test_small_buckets_are_inline_and_big_ones_are_not() -> None:
    data = encode_db([(b"big", _plain(200)), (b"empty", Bucket([])), (b"small", _plain(3))])
    assert _root_of(data, b"small") == 0
    assert _root_of(data, b"empty") == 0
    assert _root_of(data, b"big") >= 3
    assert [(n, list(b.items)) for n, b in read_db(data)] == [
        (b"big", list(_plain(200).items)),
        (b"empty", []),
        (b"small", list(_plain(3).items)),
    ]


def test_nested_bucket_sequence_and_meta_fields() -> None:
    data = encode_db([(b"a", Bucket([(b"inner", Bucket([(b"x", b"1")], sequence=7))]))])
    meta = Database(data).meta
    assert (meta.page_size, meta.freelist, meta.high_water) == (PS, 2, len(data) // PS)
    assert struct.unpack_from("<I", data, 16)[0] == bbolt.MAGIC


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([(b"b", b""), (b"a", b"")], "not strictly ascending"),
        ([(b"a", b""), (b"a", b"")], "not strictly ascending"),
        ([(b"", b"v")], "empty key"),
        ([(b"k" * 40000, b"v")], "exceeds 32768"),
    ],
)
def test_the_writer_refuses_what_bbolt_refuses(
    items: list[tuple[bytes, bytes]], message: str
) -> None:
    with pytest.raises(BboltError, match=message):
        encode_db([(b"b", Bucket(items))])


def test_fnv1a64_known_values() -> None:
    assert bbolt.fnv1a64(b"") == 0xCBF29CE484222325
    assert bbolt.fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert bbolt.fnv1a64(b"foobar") == 0x85944171F73967E8


# -- damage ----------------------------------------------------------------------------


def _db() -> bytes:
    return encode_db([(b"k", _plain(1000)), (b"m", _plain(2))])


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0xFF
    return bytes(out)


def test_one_damaged_meta_falls_back_to_the_other() -> None:
    data = _db()
    for broken in (_flip(data, 16 + 40), _flip(data, PS + 16 + 40)):  # the pgid field
        db = Database(broken)
        assert db.check() == []
        assert read_db(broken) == read_db(data)


def test_the_newer_meta_wins() -> None:
    data = _db()
    assert Database(data).meta.txid == 2  # page 0 holds txid 2, page 1 txid 1


def test_both_metas_damaged_is_invalid() -> None:
    data = _flip(_flip(_db(), 16 + 40), PS + 16 + 40)
    with pytest.raises(BboltError, match="invalid database: meta page 0: meta checksum mismatch"):
        Database(data)


def test_not_a_database() -> None:
    with pytest.raises(BboltError, match="bad magic number"):
        Database(b"hello world" * 1000)
    with pytest.raises(BboltError, match="file too small"):
        Database(b"")


def test_truncated_file_is_refused_with_sizes() -> None:
    data = _db()
    with pytest.raises(BboltError, match=rf"database truncated: {len(data) - PS} bytes"):
        Database(data[:-PS])


def test_damaged_pages_are_refused() -> None:
    data = _db()
    root = _root_of(data, b"k")
    # A page whose header names another page.
    broken = bytearray(data)
    struct.pack_into("<Q", broken, root * PS, root + 1)
    with pytest.raises(BboltError, match=f"page {root}: header names page {root + 1}"):
        read_db(bytes(broken))
    # A branch pointing beyond the high-water mark.
    broken = bytearray(data)
    struct.pack_into("<Q", broken, root * PS + 16 + 8, 10**6)
    with pytest.raises(BboltError, match="out of bounds"):
        read_db(bytes(broken))
    # A branch pointing back at itself.
    broken = bytearray(data)
    struct.pack_into("<Q", broken, root * PS + 16 + 8, root)
    with pytest.raises(BboltError, match="referenced more than once"):
        read_db(bytes(broken))
    # An element whose data lies outside its page.
    broken = bytearray(data)
    first_leaf = struct.unpack_from("<Q", data, root * PS + 16 + 8)[0]
    struct.pack_into("<I", broken, first_leaf * PS + 16 + 4, 10**6)
    with pytest.raises(BboltError, match="lies outside the page"):
        read_db(bytes(broken))


def test_check_reports_pages_nothing_uses() -> None:
    data = _db()
    # Grow the high-water mark by one page in both metas: that page is neither used nor free.
    grown = bytearray(data + b"\0" * PS)
    for base in (0, PS):
        at = base + 16
        fields = list(struct.unpack_from("<IIIIQQQQQQ", grown, at))
        fields[7] += 1
        summed = struct.pack("<IIIIQQQQQ", *fields[:9])
        fields[9] = bbolt.fnv1a64(summed)
        struct.pack_into("<IIIIQQQQQQ", grown, at, *fields)
    high = len(data) // PS
    assert Database(bytes(grown)).check() == [f"page {high}: unreachable and not free"]
