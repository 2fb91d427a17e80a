"""Translation between the etcd protobuf messages and the MVCC store's plain values.

Pure functions, one per message kind. Enum values share etcd's numbering on both sides, so
enums are casts. Response headers are not set here: the server fills them in one place.
"""

from __future__ import annotations

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.storage import mvcc_types as m

# -- requests -----------------------------------------------------------------------------


def range_request(pb: rpc_pb2.RangeRequest) -> m.RangeRequest:
    """A Range request as the store reads it."""
    return m.RangeRequest(
        key=pb.key,
        range_end=pb.range_end,
        limit=pb.limit,
        revision=pb.revision,
        sort_order=m.SortOrder(pb.sort_order),
        sort_target=m.SortTarget(pb.sort_target),
        keys_only=pb.keys_only,
        count_only=pb.count_only,
        min_mod_revision=pb.min_mod_revision,
        max_mod_revision=pb.max_mod_revision,
        min_create_revision=pb.min_create_revision,
        max_create_revision=pb.max_create_revision,
    )


def put_request(pb: rpc_pb2.PutRequest) -> m.PutRequest:
    """A Put request as the store applies it."""
    return m.PutRequest(
        key=pb.key,
        value=pb.value,
        lease=pb.lease,
        prev_kv=pb.prev_kv,
        ignore_value=pb.ignore_value,
        ignore_lease=pb.ignore_lease,
    )


def delete_request(pb: rpc_pb2.DeleteRangeRequest) -> m.DeleteRangeRequest:
    """A DeleteRange request as the store applies it."""
    return m.DeleteRangeRequest(key=pb.key, range_end=pb.range_end, prev_kv=pb.prev_kv)


def compare(pb: rpc_pb2.Compare) -> m.Compare:
    """One txn guard; the operand is the oneof member that matches the target."""
    target = m.CompareTarget(pb.target)
    operand: int | bytes
    if target == m.CompareTarget.VALUE:
        operand = pb.value
    elif target == m.CompareTarget.VERSION:
        operand = pb.version
    elif target == m.CompareTarget.CREATE:
        operand = pb.create_revision
    elif target == m.CompareTarget.MOD:
        operand = pb.mod_revision
    else:
        operand = pb.lease
    return m.Compare(
        key=pb.key,
        target=target,
        result=m.CompareResult(pb.result),
        operand=operand,
        range_end=pb.range_end,
    )


def request_op(pb: rpc_pb2.RequestOp) -> m.RequestOp:
    """One txn operation."""
    kind = pb.WhichOneof("request")
    if kind == "request_range":
        return range_request(pb.request_range)
    if kind == "request_put":
        return put_request(pb.request_put)
    if kind == "request_delete_range":
        return delete_request(pb.request_delete_range)
    if kind == "request_txn":
        return txn_request(pb.request_txn)
    # An empty RequestOp is a malformed request; etcd treats it as an empty range.
    return m.RangeRequest(key=b"", count_only=True)


def txn_request(pb: rpc_pb2.TxnRequest) -> m.TxnRequest:
    """A Txn request, nested txns included."""
    return m.TxnRequest(
        compare=tuple(compare(c) for c in pb.compare),
        success=tuple(request_op(op) for op in pb.success),
        failure=tuple(request_op(op) for op in pb.failure),
    )


# -- responses ----------------------------------------------------------------------------


def key_value(kv: m.KeyValue, out: kv_pb2.KeyValue | None = None) -> kv_pb2.KeyValue:
    """A key-value pair on the wire."""
    pb = kv_pb2.KeyValue() if out is None else out
    pb.key = kv.key
    pb.create_revision = kv.create_revision
    pb.mod_revision = kv.mod_revision
    pb.version = kv.version
    pb.value = kv.value
    pb.lease = kv.lease
    return pb


def event(ev: m.Event) -> kv_pb2.Event:
    """A watch event on the wire (with ``prev_kv`` when the store knows it)."""
    pb = kv_pb2.Event(type=kv_pb2.Event.EventType.ValueType(int(ev.type)))
    key_value(ev.kv, pb.kv)
    if ev.prev_kv is not None:
        key_value(ev.prev_kv, pb.prev_kv)
    return pb


def range_response(r: m.RangeResponse) -> rpc_pb2.RangeResponse:
    """A Range answer."""
    pb = rpc_pb2.RangeResponse(more=r.more, count=r.count)
    for kv in r.kvs:
        key_value(kv, pb.kvs.add())
    return pb


def put_response(r: m.PutResponse) -> rpc_pb2.PutResponse:
    """A Put answer."""
    pb = rpc_pb2.PutResponse()
    if r.prev_kv is not None:
        key_value(r.prev_kv, pb.prev_kv)
    return pb


def delete_response(r: m.DeleteRangeResponse) -> rpc_pb2.DeleteRangeResponse:
    """A DeleteRange answer."""
    pb = rpc_pb2.DeleteRangeResponse(deleted=r.deleted)
    for kv in r.prev_kvs:
        key_value(kv, pb.prev_kvs.add())
    return pb


def txn_response(
    r: m.TxnResponse, header: rpc_pb2.ResponseHeader, nested: bool = False
) -> rpc_pb2.TxnResponse:
    """A Txn answer. As in etcd, only the outermost response has the full header: a nested
    range, put or delete answer's header holds just the revision (here the txn's: etcd's
    differs for a range read before the txn's first write, by one), a nested txn's is empty.
    """
    pb = rpc_pb2.TxnResponse(succeeded=r.succeeded)
    if nested:
        pb.header.SetInParent()
    else:
        pb.header.CopyFrom(header)
    for resp in r.responses:
        op = pb.responses.add()
        if isinstance(resp, m.RangeResponse):
            op.response_range.CopyFrom(range_response(resp))
            op.response_range.header.revision = header.revision
        elif isinstance(resp, m.PutResponse):
            op.response_put.CopyFrom(put_response(resp))
            op.response_put.header.revision = header.revision
        elif isinstance(resp, m.DeleteRangeResponse):
            op.response_delete_range.CopyFrom(delete_response(resp))
            op.response_delete_range.header.revision = header.revision
        else:
            op.response_txn.CopyFrom(txn_response(resp, header, nested=True))
    return pb
