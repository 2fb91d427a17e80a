"""The kvstore delivery pipeline as a Dagger module.

Every stage is a function of :class:`KvstoreCi`; GitHub Actions only calls them with
``dagger call``, and a developer reruns any one of them locally the same way.
"""

from kvstore_ci.main import KvstoreCi

__all__ = ["KvstoreCi"]
