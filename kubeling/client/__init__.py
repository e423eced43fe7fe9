"""The client layer: how every kubeling component other than the API server reaches the cluster.

    kubeconfig  where the server is and who we are          → ClientConfig
    rest        the async REST client (HTTPS, pooled)        → Client
    watch       one watch stream as an async iterator        → Watch, WatchEvent
    cache       the indexed, shared object cache             → Cache, copy()
    informer    list + watch into a cache, with handlers     → Informer, SharedInformerFactory
    workqueue   de-duplicating, rate-limited work queue      → WorkQueue
    events      aggregated Kubernetes Events                  → EventRecorder

Each module states its contract at the top.
"""

from kubeling.client.cache import Cache, copy, object_key, split_key
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer, SharedInformerFactory
from kubeling.client.kubeconfig import ClientConfig, KubeconfigError, load_kubeconfig
from kubeling.client.rest import Client, DeleteOptions, ObjectList, PatchType
from kubeling.client.watch import Watch, WatchEvent
from kubeling.client.workqueue import ShutDown, WorkQueue

__all__ = [
    "Cache",
    "Client",
    "ClientConfig",
    "DeleteOptions",
    "EventRecorder",
    "Informer",
    "KubeconfigError",
    "ObjectList",
    "PatchType",
    "SharedInformerFactory",
    "ShutDown",
    "Watch",
    "WatchEvent",
    "WorkQueue",
    "copy",
    "load_kubeconfig",
    "object_key",
    "split_key",
]
