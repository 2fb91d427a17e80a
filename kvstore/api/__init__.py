"""The etcd v3 wire API (protobuf declarations in proto/, generated code in gen/)."""
