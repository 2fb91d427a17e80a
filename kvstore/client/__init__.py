"""A Python client for kvstore (and etcd v3): async :class:`Client`, blocking
:class:`SyncClient`, both with failover across endpoints."""

from kvstore.client._async import Client, prefix_end
from kvstore.client._sync import SyncClient
from kvstore.client.errors import ClientError, NoEndpointAvailable

__all__ = ["Client", "ClientError", "NoEndpointAvailable", "SyncClient", "prefix_end"]
