"""The MVCC store's request, response and event values (etcd v3's data model, as plain
frozen dataclasses: the server translates between these and the protobuf messages).

Enum values follow the numbering of etcd's protobuf enums so the translation is a cast.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SortOrder(enum.IntEnum):
    """Order of a range's results (``RangeRequest.SortOrder``)."""

    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.IntEnum):
    """Field a range sorts by (``RangeRequest.SortTarget``)."""

    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareResult(enum.IntEnum):
    """The relation a txn compare checks (``Compare.CompareResult``)."""

    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class CompareTarget(enum.IntEnum):
    """The key field a txn compare reads (``Compare.CompareTarget``)."""

    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class EventType(enum.IntEnum):
    """A watch event's kind (``mvccpb.Event.EventType``)."""

    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key at one revision. ``version`` counts puts since the key was (re)created; a
    deleted key has none (a delete event carries version 0 and its ``mod_revision``)."""

    key: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""
    lease: int = 0


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """Read ``[key, range_end)`` at ``revision`` (0: the current one).

    ``range_end``: empty for the single key; ``b"\\0"`` for every key >= ``key``; see
    :func:`kvstore.storage.keys.prefix_end` for a prefix.
    """

    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(frozen=True, slots=True)
class PutRequest:
    """Write ``value`` at ``key``, attached to ``lease`` (0: none)."""

    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRangeRequest:
    """Delete ``[key, range_end)`` (same ``range_end`` rules as a range)."""

    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """One txn guard: ``target`` of every key in ``[key, range_end)`` ``result``
    ``operand``. ``operand`` is bytes for VALUE and an integer for the other targets."""

    key: bytes
    target: CompareTarget
    result: CompareResult
    operand: int | bytes
    range_end: bytes = b""


@dataclass(frozen=True, slots=True)
class TxnRequest:
    """If every compare holds, run ``success``, else ``failure``; atomically, under one
    revision."""

    compare: tuple[Compare, ...] = ()
    success: tuple[RequestOp, ...] = ()
    failure: tuple[RequestOp, ...] = ()


@dataclass(frozen=True, slots=True)
class CompactionRequest:
    """Discard history before ``revision``. ``physical`` is accepted for compatibility:
    this store compacts in memory at once, so the answer is always physical."""

    revision: int
    physical: bool = False


@dataclass(frozen=True, slots=True)
class LeaseGrantRequest:
    """Create lease ``id`` (chosen by the proposer, > 0) with ``ttl`` seconds."""

    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeRequest:
    """Delete lease ``id`` and every key attached to it (under one revision)."""

    id: int


RequestOp = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest
Request = (
    RangeRequest
    | PutRequest
    | DeleteRangeRequest
    | TxnRequest
    | CompactionRequest
    | LeaseGrantRequest
    | LeaseRevokeRequest
)

# -- responses ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeResponse:
    """``kvs`` (at most ``limit``), whether more matched, and how many matched in all."""

    kvs: tuple[KeyValue, ...] = ()
    more: bool = False
    count: int = 0


@dataclass(frozen=True, slots=True)
class PutResponse:
    """The previous key-value when asked for with ``prev_kv`` and the key existed."""

    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteRangeResponse:
    """How many keys were deleted, and (with ``prev_kv``) what they held."""

    deleted: int = 0
    prev_kvs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, slots=True)
class TxnResponse:
    """Which branch ran and the response of each of its operations, in order."""

    succeeded: bool = False
    responses: tuple[ResponseOp, ...] = ()


@dataclass(frozen=True, slots=True)
class CompactionResponse:
    """Compaction done."""


@dataclass(frozen=True, slots=True)
class LeaseGrantResponse:
    """The lease granted."""

    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResponse:
    """Lease revoked."""


ResponseOp = RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse
Response = (
    RangeResponse
    | PutResponse
    | DeleteRangeResponse
    | TxnResponse
    | CompactionResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
)


@dataclass(frozen=True, slots=True)
class Event:
    """One change, for watchers. A DELETE's ``kv`` holds the key and the revision of the
    delete; ``prev_kv`` is the key's value just before the change (None if it had none)."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A granted lease and the keys attached to it (sorted)."""

    id: int
    ttl: int
    keys: tuple[bytes, ...] = ()
