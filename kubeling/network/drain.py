"""Zero-error termination: a deleted pod is told to stop only once no proxy routes to it.

In Kubernetes the kubelet sends SIGTERM as soon as a pod is deleted, while kube-proxy and the
ingress controllers are still catching up with the EndpointSlice change; requests that reach
the pod in between fail, which is why manifests carry a `preStop: sleep 5`. kubeling closes the
gap with a report written by every data path and a gate the agent waits at:

* **`ProxyReport`** (written by each node's service proxy and by the Ingress proxy): the Lease
  `kube-system/kubeling-proxy-<name>`, labelled `kubeling.dev/proxy-report`, whose annotation
  `kubeling.dev/applied-slices-revision` is the revision of the EndpointSlice watch that its
  routing reflects. It is written when that revision advances (one write in flight, the newest
  wins) and renewed every third of its duration, so a proxy that died stops counting once its
  Lease expires; a proxy that stops cleanly deletes its Lease.
* **`DrainGate.wait(pod, timeout)`** (the agent, before preStop and SIGTERM of a deleted pod):
    1. the Services whose selector matches the pod; with none, or without a pod IP, nothing
       routes to it;
    2. wait until each of those Services' EndpointSlices lists the pod as `terminating` (the
       EndpointSlice controller has seen the deletion, and from then on never lists it as
       ready again); a pod that is not listed at all counts as gone unless it is Ready (then
       its listing is on its way);
    3. the newest resourceVersion among those slices is the revision every proxy must reach:
       wait until every live report has applied at least that.
  Bounded by `timeout` (the agent gives half the grace period, so the app keeps the other half
  for its own shutdown). Returns what was still behind when time ran out, if anything.

Revisions are compared as integers: both storage backends hand out one increasing revision
for the whole store (as etcd does), which the watch's resourceVersions are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.informer import Informer
from kubeling.client.lease import LEASES, Lease
from kubeling.client.rest import Client
from kubeling.network.serviceendpoints import pod_ready, services_of_pod
from kubeling.util.tasks import cancel_and_wait
from kubeling.util.timefmt import parse_time, utcnow

log = logging.getLogger(__name__)

REPORT_NAMESPACE = "kube-system"
REPORT_LABEL = "kubeling.dev/proxy-report"
APPLIED_ANNOTATION = "kubeling.dev/applied-slices-revision"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REPORT_DURATION = 15
RECHECK = 1.0  # seconds between checks when nothing changes (reports expire with time)

SERVICES = REGISTRY.resource("", "v1", "services")
SLICES = REGISTRY.resource("discovery.k8s.io", "v1", "endpointslices")


def revision_of(value: object) -> int:
    with contextlib.suppress(TypeError, ValueError):
        return int(str(value))
    return 0


class ProxyReport:
    """What one proxy has applied, kept in its Lease (see the module docstring)."""

    def __init__(self, client: Client, name: str, duration: int = REPORT_DURATION) -> None:
        self.lease = Lease(
            client,
            f"kubeling-proxy-{name}",
            duration,
            namespace=REPORT_NAMESPACE,
            labels={REPORT_LABEL: name},
        )
        self.applied = 0
        self.written = -1
        self.writes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def advance(self, revision: int) -> None:
        """The proxy now routes by the EndpointSlices as of `revision`."""
        if revision > self.applied:
            self.applied = revision
            self._wake.set()

    async def start(self) -> None:
        await self._write()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        lease = self.lease
        with contextlib.suppress(ApiError, aiohttp.ClientError, OSError, TimeoutError):
            await lease.client.delete(LEASES, lease.name, lease.namespace)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.lease.duration / 3)
            self._wake.clear()
            try:
                await self._write()
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as err:
                log.warning("proxy report %s: %s", self.lease.name, err)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _write(self) -> None:
        applied = self.applied
        await self.lease.renew({APPLIED_ANNOTATION: str(applied)})
        self.written = applied
        self.writes += 1


class DrainGate:
    """Answers, for a deleted pod, when every proxy has stopped routing to it."""

    def __init__(self, client: Client, services: Informer, slices: Informer) -> None:
        self.services = services
        self.slices = slices
        self._services_of = services_of_pod(services)
        self.reports = Informer(client, LEASES, REPORT_NAMESPACE, label_selector=REPORT_LABEL)
        self._change: asyncio.Future[None] | None = None
        for informer in (services, slices, self.reports):
            informer.add_handlers(self._notify, self._notify, self._notify)

    async def start(self) -> None:
        self.reports.start()
        await self.reports.wait_synced()

    async def stop(self) -> None:
        await self.reports.stop()
        self._notify()

    def _notify(self, *_objects: Any) -> None:
        change, self._change = self._change, None
        if change is not None and not change.done():
            change.set_result(None)

    async def _changed(self, timeout: float) -> None:
        if self._change is None:
            self._change = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._change), timeout)

    # -- the two conditions -------------------------------------------------------------------

    def unrouted_revision(self, pod: Mapping[str, Any]) -> int | None:
        """The slice revision from which no Service lists the pod as ready, or None while
        some slice still may (the EndpointSlice controller has not caught up)."""
        meta = pod.get("metadata") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return 0
        uid = meta.get("uid")
        namespace = meta.get("namespace")
        newest = 0
        for key in self._services_of(pod):
            name = key.split("/", 1)[1]
            listed = False
            for slice_ in self.slices.cache.list(namespace):
                slice_meta = slice_.get("metadata") or {}
                if (slice_meta.get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
                    continue
                for endpoint in slice_.get("endpoints") or []:
                    ref = endpoint.get("targetRef") or {}
                    if ref.get("uid") != uid and ip not in (endpoint.get("addresses") or []):
                        continue
                    listed = True
                    if not (endpoint.get("conditions") or {}).get("terminating"):
                        return None
                    newest = max(newest, revision_of(slice_meta.get("resourceVersion")))
            if not listed and pod_ready(pod):
                return None
        return newest

    def lagging(self, revision: int) -> list[str]:
        """The live proxies that have not applied `revision` yet."""
        now = utcnow()
        behind = []
        for lease in self.reports.cache.list(REPORT_NAMESPACE):
            spec = lease.get("spec") or {}
            try:
                renewed = parse_time(str(spec.get("renewTime")))
            except ValueError:
                continue
            if renewed + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0)) < now:
                continue  # a proxy that stopped renewing no longer routes anything
            annotations = lease["metadata"].get("annotations") or {}
            if revision_of(annotations.get(APPLIED_ANNOTATION)) < revision:
                behind.append(str(lease["metadata"]["name"]))
        return behind

    async def wait(self, pod: Mapping[str, Any], timeout: float) -> list[str]:
        """Wait until no proxy routes to the deleted `pod`, for at most `timeout` seconds.
        Returns what was still behind when the time ran out (nothing: the handoff is done)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            revision = self.unrouted_revision(pod)
            if revision is None:
                behind = ["the EndpointSlices (the pod is still listed as ready)"]
            else:
                behind = self.lagging(revision) if revision else []
            remaining = deadline - loop.time()
            if not behind or remaining <= 0:
                return behind
            await self._changed(min(remaining, RECHECK))
