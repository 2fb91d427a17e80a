"""bbolt's file format: writing a database file and walking one (pure, over bytes).

etcd keeps its whole state in one bbolt file, and ``etcdctl snapshot`` moves that file
around; writing and reading the same format is what lets data move between etcd and this
store. Only what a snapshot needs is here: a writer that lays out a finished set of buckets
in one go (no transactions, no free pages) and a reader that walks any valid file and
refuses a damaged one with a precise :class:`BboltError`.

The format, little-endian, in pages of ``page_size`` bytes (4096 here):

- every page starts with a 16-byte header ``id u64 | flags u16 | count u16 | overflow u32``;
  a page whose content is longer than one page runs on over ``overflow`` further pages;
- pages 0 and 1 are meta pages (flag 0x04): ``magic 0xED0CDAED u32 | version 2 u32 |
  page size u32 | flags u32 | root bucket (root pgid u64, sequence u64) | freelist pgid u64
  | high-water pgid u64 | txid u64 | checksum u64`` where the checksum is FNV-1a 64 over the
  56 bytes before it; a reader takes the valid one with the larger txid;
- the freelist page (flag 0x10) lists free page ids (u64); a count of 0xFFFF means the real
  count is the first u64;
- a leaf page (0x02) has ``count`` elements ``flags u32 | pos u32 | ksize u32 | vsize u32``,
  a branch page (0x01) elements ``pos u32 | ksize u32 | child pgid u64``; ``pos`` is the
  offset of the element's key from the element itself, keys ascend;
- a leaf element with flag 0x01 is a nested bucket: its value is ``root pgid u64 | sequence
  u64``, and when the root is 0 (an *inline* bucket, small and without sub-buckets) a whole
  leaf page follows in the value itself.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

PAGE_SIZE = 4096
MAGIC = 0xED0CDAED
VERSION = 2
BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
BUCKET_LEAF = 0x01
"""Leaf element flag: the value is a nested bucket."""
NO_FREELIST = 0xFFFF_FFFF_FFFF_FFFF
MAX_KEY_SIZE = 32768
MAX_VALUE_SIZE = (1 << 31) - 2
"""bbolt's own limits on a key and a value."""

_HEADER = struct.Struct("<QHHI")
_LEAF_ELEM = struct.Struct("<IIII")
_BRANCH_ELEM = struct.Struct("<IIQ")
_BUCKET = struct.Struct("<QQ")
_META = struct.Struct("<IIIIQQQQQQ")
_META_SUMMED = 56
"""Bytes of the meta covered by its checksum (every field before it)."""
_ELEM = 16
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


class BboltError(ValueError):
    """The bytes are not a valid bbolt database (or are damaged); the message says where."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """A bucket's contents: ``(key, value)`` pairs in ascending key order, where a value is
    bytes or a nested :class:`Bucket`."""

    items: Sequence[tuple[bytes, bytes | Bucket]]
    sequence: int = 0


Value: TypeAlias = "bytes | Bucket"


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bits: the meta page checksum."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _U64
    return h


# -- writing ------------------------------------------------------------------------------


class _Pages:
    """Appends pages to ``out`` in page-id order; pages 0-2 (metas, freelist) are reserved
    and written last, once the high-water mark is known."""

    def __init__(self, out: BinaryIO, page_size: int) -> None:
        self.out = out
        self.page_size = page_size
        self.next_id = 3
        out.write(b"\0" * (3 * page_size))

    def write(self, flags: int, count: int, body: bytes) -> int:
        """Write one page (with its overflow) and return its id."""
        ps = self.page_size
        span = -(-(_HEADER.size + len(body)) // ps)
        pgid = self.next_id
        self.out.write(_HEADER.pack(pgid, flags, count, span - 1))
        self.out.write(body)
        self.out.write(b"\0" * (span * ps - _HEADER.size - len(body)))
        self.next_id += span
        return pgid


def _leaf_body(items: Sequence[tuple[bytes, int, bytes]]) -> bytes:
    """The elements and data of a leaf page holding ``(key, flags, value)`` items."""
    n = len(items)
    heads = bytearray()
    data = bytearray()
    pack = _LEAF_ELEM.pack
    for i, (key, flags, value) in enumerate(items):
        heads += pack(flags, (n - i) * _ELEM + len(data), len(key), len(value))
        data += key
        data += value
    return bytes(heads + data)


def _branch_body(children: Sequence[tuple[bytes, int]]) -> bytes:
    n = len(children)
    heads = bytearray()
    data = bytearray()
    pack = _BRANCH_ELEM.pack
    for i, (key, pgid) in enumerate(children):
        heads += pack((n - i) * _ELEM + len(data), len(key), pgid)
        data += key
    return bytes(heads + data)


def _fill(sizes: Sequence[int], room: int) -> list[tuple[int, int]]:
    """Split items of the given element sizes into page ranges ``[lo, hi)``: as many items
    per page as fit in ``room`` bytes, at least one (a bigger one overflows its page)."""
    ranges: list[tuple[int, int]] = []
    lo, used = 0, 0
    for i, size in enumerate(sizes):
        if i > lo and used + size > room:
            ranges.append((lo, i))
            lo, used = i, 0
        used += size
    if lo < len(sizes) or not ranges:
        ranges.append((lo, len(sizes)))
    return ranges


def _write_tree(pages: _Pages, items: Sequence[tuple[bytes, int, bytes]]) -> int:
    """Write a bucket's B+tree (leaves, then each branch level) and return its root id."""
    room = pages.page_size - _HEADER.size
    level: list[tuple[bytes, int]] = []
    for lo, hi in _fill([_ELEM + len(k) + len(v) for k, _, v in items], room):
        leaf = items[lo:hi]
        pgid = pages.write(LEAF_PAGE, len(leaf), _leaf_body(leaf))
        level.append((leaf[0][0] if leaf else b"", pgid))
    while len(level) > 1:
        upper: list[tuple[bytes, int]] = []
        for lo, hi in _fill([_ELEM + len(k) for k, _ in level], room):
            children = level[lo:hi]
            pgid = pages.write(BRANCH_PAGE, len(children), _branch_body(children))
            upper.append((children[0][0], pgid))
        level = upper
    return level[0][1]


def _check_items(items: Sequence[tuple[bytes, Value]], where: str) -> None:
    prev: bytes | None = None
    for key, value in items:
        if not key:
            raise BboltError(f"{where}: empty key")
        if len(key) > MAX_KEY_SIZE:
            raise BboltError(f"{where}: key of {len(key)} bytes exceeds {MAX_KEY_SIZE}")
        if isinstance(value, bytes) and len(value) > MAX_VALUE_SIZE:
            raise BboltError(f"{where}: value of {len(value)} bytes exceeds {MAX_VALUE_SIZE}")
        if prev is not None and key <= prev:
            raise BboltError(f"{where}: keys not strictly ascending at {key!r}")
        prev = key


def _inline_size(bucket: Bucket) -> int | None:
    """The size of ``bucket`` as an inline page, or None if bbolt would not inline it."""
    size = _HEADER.size
    for key, value in bucket.items:
        if not isinstance(value, bytes):
            return None
        size += _ELEM + len(key) + len(value)
    return size


def _bucket_value(pages: _Pages, bucket: Bucket, where: str) -> bytes:
    """A nested bucket's value in its parent: inline when small, else its tree's root."""
    _check_items(bucket.items, where)
    size = _inline_size(bucket)
    if size is not None and size <= pages.page_size // 4:
        leaf = [(k, 0, v) for k, v in bucket.items if isinstance(v, bytes)]
        page = _HEADER.pack(0, LEAF_PAGE, len(leaf), 0) + _leaf_body(leaf)
        return _BUCKET.pack(0, bucket.sequence) + page
    return _BUCKET.pack(_write_items(pages, bucket.items, where), bucket.sequence)


def _write_items(pages: _Pages, items: Sequence[tuple[bytes, Value]], where: str) -> int:
    """Write a bucket's items (sub-buckets first, so their roots are known) as a tree."""
    encoded: list[tuple[bytes, int, bytes]] = []
    for key, value in items:
        if isinstance(value, bytes):
            encoded.append((key, 0, value))
        else:
            encoded.append((key, BUCKET_LEAF, _bucket_value(pages, value, f"{where}/{key!r}")))
    return _write_tree(pages, encoded)


def _meta_page(page_size: int, pgid: int, root: int, high_water: int, txid: int) -> bytes:
    fields = _META.pack(MAGIC, VERSION, page_size, 0, root, 0, 2, high_water, txid, 0)
    meta = fields[:_META_SUMMED] + struct.pack("<Q", fnv1a64(fields[:_META_SUMMED]))
    page = _HEADER.pack(pgid, META_PAGE, 0, 0) + meta
    return page + b"\0" * (page_size - len(page))


def write_db(
    out: BinaryIO, buckets: Sequence[tuple[bytes, Bucket]], page_size: int = PAGE_SIZE
) -> int:
    """Write a database holding the top-level ``buckets`` (names ascending) to ``out``, a
    seekable binary file positioned at its start; returns the bytes written (a multiple of
    ``page_size``). Raises BboltError for keys bbolt would refuse or that are not sorted."""
    if page_size < 1024 or page_size & (page_size - 1):
        raise BboltError(f"page size {page_size} is not a power of two of at least 1024")
    _check_items(buckets, "root")
    start = out.tell()
    pages = _Pages(out, page_size)
    root = _write_items(pages, buckets, "")
    high_water = pages.next_id
    out.seek(start)
    # Two metas of consecutive transactions, as a database that has committed once.
    out.write(_meta_page(page_size, 0, root, high_water, 2))
    out.write(_meta_page(page_size, 1, root, high_water, 1))
    freelist = _HEADER.pack(2, FREELIST_PAGE, 0, 0)
    out.write(freelist + b"\0" * (page_size - len(freelist)))
    out.seek(start + high_water * page_size)
    return high_water * page_size


def encode_db(buckets: Sequence[tuple[bytes, Bucket]], page_size: int = PAGE_SIZE) -> bytes:
    """:func:`write_db` into memory."""
    buf = io.BytesIO()
    write_db(buf, buckets, page_size)
    return buf.getvalue()


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Meta:
    """A meta page's fields."""

    page_size: int
    root: int
    freelist: int
    high_water: int
    txid: int


_CANDIDATE_PAGE_SIZES = (4096, 8192, 16384, 32768, 65536, 1024, 2048)


def _parse_meta(data: memoryview, offset: int) -> Meta | str:
    """The meta of the page at ``offset``, or why it is not a valid one."""
    if offset + _HEADER.size + _META.size > len(data):
        return "file too small for a meta page"
    _, flags, _, _ = _HEADER.unpack_from(data, offset)
    fields = _META.unpack_from(data, offset + _HEADER.size)
    magic, version, page_size, _, root, _, freelist, high_water, txid, checksum = fields
    summed = bytes(data[offset + _HEADER.size : offset + _HEADER.size + _META_SUMMED])
    checks = (
        (magic == MAGIC, "bad magic number"),
        (version == VERSION, f"unsupported version {version}"),
        (checksum == fnv1a64(summed), "meta checksum mismatch"),
        (bool(flags & META_PAGE), "meta page without the meta flag"),
        (page_size >= 1024 and not page_size & (page_size - 1), f"bad page size {page_size}"),
    )
    for ok, problem in checks:
        if not ok:
            return problem
    return Meta(page_size, root, freelist, high_water, txid)


def read_meta(data: bytes | memoryview) -> Meta:
    """The current meta: the valid one of pages 0 and 1 with the larger txid (bbolt's
    choice, so a write torn in one meta page leaves the other in force)."""
    view = memoryview(data)
    first = _parse_meta(view, 0)
    # Page 1 starts one page in: page 0 tells the page size, or else bbolt's usual sizes
    # are tried.
    sizes = (first.page_size,) if isinstance(first, Meta) else _CANDIDATE_PAGE_SIZES
    second: Meta | None = None
    why_not = ""
    for ps in sizes:
        found = _parse_meta(view, ps)
        if isinstance(found, Meta) and found.page_size == ps:
            second = found
            break
        why_not = why_not or (found if isinstance(found, str) else "page size differs")
    valid = [m for m in (first, second) if isinstance(m, Meta)]
    if not valid:
        raise BboltError(f"invalid database: meta page 0: {first}; meta page 1: {why_not}")
    meta = max(valid, key=lambda m: m.txid)
    if meta.root >= meta.high_water or (
        meta.freelist != NO_FREELIST and meta.freelist >= meta.high_water
    ):
        raise BboltError("invalid database: meta points beyond its high-water mark")
    if meta.high_water * meta.page_size > len(view):
        raise BboltError(
            f"database truncated: {len(view)} bytes, its meta needs "
            f"{meta.high_water * meta.page_size} ({meta.high_water} pages of {meta.page_size})"
        )
    return meta


class Database:
    """A bbolt file to walk. ``data`` is its bytes (a memoryview of an mmap works); nothing
    is copied except the keys and values handed out."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data)
        self.meta = read_meta(self._data)
        self._ps = self.meta.page_size
        self._used: set[int] | None = None
        """Pages reached so far, while :meth:`check` runs."""

    @property
    def size(self) -> int:
        """The database's size as bbolt reports it (high-water mark x page size)."""
        return self.meta.high_water * self._ps

    def _page(self, pgid: int, seen: set[int]) -> tuple[memoryview, int]:
        """The bytes of page ``pgid`` (overflow included) and its element count; checks
        bounds, type and that no page is reached twice (``seen``: those of this walk)."""
        ps, hw = self._ps, self.meta.high_water
        if pgid < 2 or pgid >= hw:
            raise BboltError(f"page {pgid}: out of bounds (high-water mark {hw})")
        if pgid in seen:
            raise BboltError(f"page {pgid}: referenced more than once")
        seen.add(pgid)
        start = pgid * ps
        stored_id, flags, count, overflow = _HEADER.unpack_from(self._data, start)
        if stored_id != pgid:
            raise BboltError(f"page {pgid}: header names page {stored_id}")
        if not flags & (BRANCH_PAGE | LEAF_PAGE):
            raise BboltError(f"page {pgid}: not a branch or leaf page (flags {flags:#x})")
        if pgid + overflow >= hw:
            raise BboltError(f"page {pgid}: overflow of {overflow} runs past the high-water mark")
        if self._used is not None:
            for p in range(pgid, pgid + overflow + 1):
                if p in self._used:
                    raise BboltError(f"page {p}: referenced more than once")
                self._used.add(p)
        return self._data[start : start + (overflow + 1) * ps], count

    def buckets(self) -> Iterator[tuple[bytes, BucketView]]:
        """The top-level buckets, by name."""
        root = BucketView(self, self.meta.root, None, "root")
        for name, value in root.items():
            if not isinstance(value, BucketView):
                raise BboltError(f"root: key {name!r} is not a bucket")
            yield name, value

    def bucket(self, name: bytes) -> BucketView | None:
        """One top-level bucket (walks the root bucket)."""
        for found, view in self.buckets():
            if found == name:
                return view
        return None

    def free_pages(self) -> set[int]:
        """The page ids the freelist lists (empty when the file keeps no freelist)."""
        if self.meta.freelist == NO_FREELIST:
            return set()
        start = self.meta.freelist * self._ps
        _, flags, count, overflow = _HEADER.unpack_from(self._data, start)
        if not flags & FREELIST_PAGE:
            raise BboltError(f"page {self.meta.freelist}: not a freelist page ({flags:#x})")
        pos = start + _HEADER.size
        if count == 0xFFFF:
            (count,) = struct.unpack_from("<Q", self._data, pos)
            pos += 8
        if pos + 8 * count > start + (overflow + 1) * self._ps:
            raise BboltError(f"freelist of {count} ids overruns its page")
        return set(struct.unpack_from(f"<{count}Q", self._data, pos))

    def check(self) -> list[str]:
        """Every consistency error (an empty list for a sound file): what ``bbolt check``
        looks at, that each page below the high-water mark is used exactly once or free.
        A file that keeps no freelist (etcd opens bbolt so) has as free pages exactly
        those nothing reaches: bbolt rebuilds its freelist so on open."""
        self._used = set()
        try:
            free = self.free_pages()
            for _, bucket in self.buckets():
                _walk(bucket)
        except BboltError as exc:
            return [str(exc)]
        finally:
            reached, self._used = self._used or set(), None
        used = reached | {0, 1}
        if self.meta.freelist == NO_FREELIST:
            return []
        overflow = _HEADER.unpack_from(self._data, self.meta.freelist * self._ps)[3]
        used |= set(range(self.meta.freelist, self.meta.freelist + overflow + 1))
        errors = [f"page {p}: reachable and free" for p in sorted(used & free)]
        errors.extend(
            f"page {p}: unreachable and not free"
            for p in range(self.meta.high_water)
            if p not in used and p not in free
        )
        return errors


def _walk(bucket: BucketView) -> None:
    for _, value in bucket.items():
        if isinstance(value, BucketView):
            _walk(value)


class BucketView:
    """A bucket inside a :class:`Database`: a page tree, or an inline page."""

    def __init__(self, db: Database, root: int, inline: memoryview | None, where: str) -> None:
        self._db = db
        self._root = root
        self._inline = inline
        self.where = where

    def items(self) -> Iterator[tuple[bytes, bytes | BucketView]]:
        """Every pair in key order; nested buckets as views. Raises BboltError on damage."""
        prev: bytes | None = None
        for key, flags, value in self._leaf_items():
            if prev is not None and key <= prev:
                raise BboltError(f"{self.where}: keys out of order at {key!r}")
            prev = key
            if flags & BUCKET_LEAF:
                yield key, self._child(key, value)
            else:
                yield key, bytes(value)

    def _child(self, key: bytes, value: memoryview) -> BucketView:
        where = f"{self.where}/{key!r}"
        if len(value) < _BUCKET.size:
            raise BboltError(f"{where}: bucket header of {len(value)} bytes")
        root, _ = _BUCKET.unpack_from(value, 0)
        if root:
            return BucketView(self._db, root, None, where)
        return BucketView(self._db, 0, value[_BUCKET.size :], where)

    def _leaf_items(self) -> Iterator[tuple[bytes, int, memoryview]]:
        if self._inline is not None:
            page = self._inline
            if len(page) < _HEADER.size:
                raise BboltError(f"{self.where}: inline page of {len(page)} bytes")
            _, flags, count, _ = _HEADER.unpack_from(page, 0)
            if not flags & LEAF_PAGE:
                raise BboltError(f"{self.where}: inline page is not a leaf ({flags:#x})")
            yield from _leaf(page, count, f"{self.where} (inline)")
            return
        yield from self._tree(self._root, 0, set())

    def _tree(
        self, pgid: int, depth: int, seen: set[int]
    ) -> Iterator[tuple[bytes, int, memoryview]]:
        if depth > 64:
            raise BboltError(f"{self.where}: tree deeper than 64 levels at page {pgid}")
        page, count = self._db._page(pgid, seen)
        flags = _HEADER.unpack_from(page, 0)[1]
        if flags & LEAF_PAGE:
            yield from _leaf(page, count, f"{self.where} page {pgid}")
            return
        for child in _branch(page, count, f"{self.where} page {pgid}"):
            yield from self._tree(child, depth + 1, seen)


def _leaf(page: memoryview, count: int, where: str) -> Iterator[tuple[bytes, int, memoryview]]:
    end = len(page)
    if _HEADER.size + count * _ELEM > end:
        raise BboltError(f"{where}: {count} elements overrun the page")
    unpack = _LEAF_ELEM.unpack_from
    for i in range(count):
        at = _HEADER.size + i * _ELEM
        flags, pos, ksize, vsize = unpack(page, at)
        k = at + pos
        if k + ksize + vsize > end:
            raise BboltError(f"{where}: element {i} lies outside the page")
        yield bytes(page[k : k + ksize]), flags, page[k + ksize : k + ksize + vsize]


def _branch(page: memoryview, count: int, where: str) -> list[int]:
    if count == 0:
        raise BboltError(f"{where}: empty branch page")
    if _HEADER.size + count * _ELEM > len(page):
        raise BboltError(f"{where}: {count} elements overrun the page")
    out = []
    for i in range(count):
        at = _HEADER.size + i * _ELEM
        pos, ksize, child = _BRANCH_ELEM.unpack_from(page, at)
        if at + pos + ksize > len(page):
            raise BboltError(f"{where}: element {i} lies outside the page")
        out.append(child)
    return out


def read_db(data: bytes | memoryview) -> list[tuple[bytes, Bucket]]:
    """The whole database as :class:`Bucket` values (for tests and small files)."""

    def load(view: BucketView) -> Bucket:
        return Bucket([(k, load(v) if isinstance(v, BucketView) else v) for k, v in view.items()])

    return [(name, load(view)) for name, view in Database(data).buckets()]
