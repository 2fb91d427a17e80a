"""The server: drives the Raft core over gRPC and serves the etcd v3 API.

Modules, from the outside in:

- ``serve`` / ``member``: ``kvstore serve``, one member's lifecycle (start, SIGTERM);
  ``devcluster``: ``kvstore dev-cluster``; ``config``: flags and ``KVSTORE_*`` variables.
- ``services``, ``watch_service`` and ``auth_service`` (etcd v3 gRPC services), ``edges``
  (malformed-request interceptor), ``peer`` (Raft traffic and forwarding between members),
  thin shells over ``etcd``; ``gateway`` (etcd's v3 JSON API, calling the same servicers),
  ``jsonpb`` (messages as etcd's gateway writes JSON), ``probes`` (/health, /livez,
  /readyz, /version), ``http_sites`` (what each HTTP port serves) over ``http`` (the
  HTTP/1.1 server of the metrics and client HTTP ports).
- ``etcd``: request handling: validation, quota, forwarding to the leader, leader-only
  work (lease timing, leadership transfer); ``membership``: member changes on the leader.
- ``node``: the only driver of ``RawNode``: persist, send, apply, ReadIndex.
- ``statemachine``: the replicated state (MVCC store, members, alarms, auth) and the one
  place store errors become etcd errors; ``auth_store`` (users, roles, permission rules,
  pure), ``auth_api`` (the Auth calls), ``identity`` (the caller of a call), ``tokens``
  (simple and JWT tokens); ``watch`` (the watch hub), ``lessor`` (lease deadlines).
- ``transport`` (peer connections), ``convert`` (protobuf <-> store values), ``errors``
  (etcd's codes and messages), ``ids``, ``keyrange``, ``metrics``, ``tracing``, ``logs``.
- ``snapshot_file`` (the file ``etcdctl snapshot save`` writes, and building it from a
  member), ``etcd_snapshot`` (etcd's buckets <-> a member's state), ``restore`` and
  ``snapshot_cli`` (``kvstore snapshot restore``/``status``), ``snapshot_status``.

See docs/server.md.
"""
