"""A real kube-apiserver (built from source at KUBERNETES_VERSION) keeps its whole state in a
3-member store: the objects a cluster is made of go through kubectl and the REST API, with
pagination, watches, optimistic concurrency, a CRD and its custom objects; they survive an
apiserver restart and the loss of the store's leader under a write load.

The store is checked from both sides: through the API, and by reading the apiserver's keys
(``<prefix>/<resource>/<namespace>/<name>``) in the store directly.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from kvstore.client import ClientError
from kvstore.verify.cluster import LocalCluster
from tests.kvstore.kubernetes import logscan
from tests.kvstore.kubernetes.apiserver import ApiServer
from tests.kvstore.kubernetes.client import ApiClient, JsonObject, Kubectl

pytestmark = [pytest.mark.kubernetes, pytest.mark.slow]

CRD_GROUP = "example.kvstore.dev"


def namespace(api: ApiClient, name: str) -> None:
    api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})


def configmap(name: str, **data: str) -> JsonObject:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def store_keys(store: LocalCluster, prefix: str) -> set[str]:
    """The keys under ``prefix`` as the store holds them (a linearizable read)."""
    with store.client() as c:
        resp = c.get(prefix.encode(), prefix=True, keys_only=True)
    return {kv.key.decode() for kv in resp.kvs}


def key_of(apiserver: ApiServer, resource: str, ns: str, name: str) -> str:
    return f"{apiserver.config.etcd_prefix}/{resource}/{ns}/{name}"


def crd(plural: str, kind: str) -> JsonObject:
    """A namespaced CRD of group example.kvstore.dev with a schema (``spec.size`` an integer
    1..100, ``spec.color`` a string) and the status and scale subresources."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.size",
                            "statusReplicasPath": ".status.size",
                        },
                    },
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 100},
                                        "color": {"type": "string"},
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def wait_established(kubectl: Kubectl, name: str) -> None:
    kubectl.run(
        "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s", timeout=70
    )  # fmt: skip


def deployment(name: str, replicas: int, image: str) -> JsonObject:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


# --- create, get, update, delete --------------------------------------------------------


def test_namespaces_configmaps_and_secrets_round_trip_through_kubectl(
    kubectl: Kubectl, api: ApiClient, apiserver: ApiServer, store: LocalCluster
) -> None:
    kubectl.run("create", "namespace", "crud")
    assert kubectl.json("get", "namespace", "crud")["status"]["phase"] == "Active"

    kubectl.run("-n", "crud", "create", "configmap", "app", "--from-literal=color=blue")
    created = kubectl.json("-n", "crud", "get", "configmap", "app")
    assert created["data"] == {"color": "blue"}
    # the object lives in the store under the apiserver's prefix, in its protobuf encoding
    cm_key = key_of(apiserver, "configmaps", "crud", "app")
    with store.client() as c:
        (kv,) = c.get(cm_key.encode()).kvs
    assert kv.value.startswith(b"k8s\x00") and b"blue" in kv.value
    # the object's resourceVersion is the key's modification revision in the store
    assert created["metadata"]["resourceVersion"] == str(kv.mod_revision)

    kubectl.run("-n", "crud", "patch", "configmap", "app", "--type=merge",
                "-p", '{"data":{"color":"green","size":"3"}}')  # fmt: skip
    patched = kubectl.json("-n", "crud", "get", "configmap", "app")
    assert patched["data"] == {"color": "green", "size": "3"}
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    # an update carrying the old resourceVersion loses (the store's compare on the key's
    # modification revision fails), and leaves the object as it was
    stale = {**created, "data": {"color": "red"}}
    result = kubectl.run("replace", "-f", "-", stdin=json.dumps(stale), check=False)
    assert result.returncode != 0
    assert "the object has been modified" in result.stderr, result.stderr
    assert kubectl.json("-n", "crud", "get", "configmap", "app")["data"]["color"] == "green"

    kubectl.run("-n", "crud", "create", "secret", "generic", "creds",
                "--from-literal=password=s3cret")  # fmt: skip
    secret = kubectl.json("-n", "crud", "get", "secret", "creds")
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"

    kubectl.run("-n", "crud", "delete", "configmap/app", "secret/creds")
    gone = kubectl.run("-n", "crud", "get", "configmap", "app", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert store_keys(store, f"{apiserver.config.etcd_prefix}/secrets/crud/") == set()
    assert store_keys(store, f"{apiserver.config.etcd_prefix}/configmaps/crud/") == set()

    # Without a controller manager a deleted namespace stays Terminating until its
    # finalizer is removed, which the namespace controller would do once it is empty.
    kubectl.run("delete", "namespace", "crud", "--wait=false")
    ns = kubectl.json("get", "namespace", "crud")
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    ns["spec"]["finalizers"] = []
    api.ok("PUT", "/api/v1/namespaces/crud/finalize", ns)
    gone = kubectl.run("get", "namespace", "crud", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_deployment_spec_changes_bump_its_generation(kubectl: Kubectl, api: ApiClient) -> None:
    namespace(api, "apps")
    kubectl.run("-n", "apps", "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2")
    d = kubectl.json("-n", "apps", "get", "deployment", "web")
    assert (d["spec"]["replicas"], d["metadata"]["generation"]) == (2, 1)

    kubectl.run("-n", "apps", "scale", "deployment", "web", "--replicas=5")  # scale subresource
    kubectl.run("-n", "apps", "set", "image", "deployment/web", "nginx=nginx:1.28")
    d = kubectl.json("-n", "apps", "get", "deployment", "web")
    assert d["spec"]["replicas"] == 5
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert d["metadata"]["generation"] == 3

    kubectl.apply(deployment("api", 3, "busybox:1.36"), "-n", "apps")
    names = kubectl.run("-n", "apps", "get", "deployments", "-o", "name").stdout.split()
    assert names == ["deployment.apps/api", "deployment.apps/web"]
    kubectl.run("-n", "apps", "delete", "deployment", "web", "api")
    assert kubectl.run("-n", "apps", "get", "deployments", "-o", "name").stdout == ""


# --- lists in pages ------------------------------------------------------------------------


def test_paged_list_is_a_snapshot_and_kubectl_chunks_see_everything(
    api: ApiClient, kubectl: Kubectl
) -> None:
    namespace(api, "paging")
    names = [f"cm-{i:02d}" for i in range(25)]
    for name in names:
        api.ok("POST", "/api/v1/namespaces/paging/configmaps", configmap(name, n=name))
    path = "/api/v1/namespaces/paging/configmaps"

    first = api.ok("GET", f"{path}?limit=10")
    assert [i["metadata"]["name"] for i in first["items"]] == names[:10]
    assert first["metadata"]["remainingItemCount"] == 15
    token = first["metadata"]["continue"]
    # an object created after the first page is not in the later ones: every page is read
    # at the first page's revision
    api.ok("POST", path, configmap("cm-99", n="late"))
    rest: list[str] = []
    while token:
        page = api.ok("GET", f"{path}?limit=10&continue={token}")
        rest += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
    assert rest == names[10:]

    pages = api.list_pages(path, limit=7)
    assert [len(p["items"]) for p in pages] == [7, 7, 7, 5]
    assert [i["metadata"]["name"] for p in pages for i in p["items"]] == [*names, "cm-99"]

    listed = kubectl.run("-n", "paging", "get", "configmaps", "--chunk-size=4", "-o", "name")
    assert listed.stdout.split() == [f"configmap/{n}" for n in [*names, "cm-99"]]


# --- watches -------------------------------------------------------------------------------


def test_watch_replays_history_then_streams_live_changes(api: ApiClient) -> None:
    namespace(api, "watched")
    path = "/api/v1/namespaces/watched/configmaps"
    start = api.ok("GET", path)["metadata"]["resourceVersion"]
    # three changes before the watch starts: it replays them from its resourceVersion
    api.ok("POST", path, configmap("w", v="1"))
    api.ok("PUT", f"{path}/w", configmap("w", v="2"))
    api.ok("POST", path, configmap("x", v="1"))

    events: list[JsonObject] = []
    watcher = threading.Thread(
        target=lambda: events.extend(api.watch(path, start, timeout_s=20, stop_after=5)),
        daemon=True,
    )
    watcher.start()
    time.sleep(1)
    # two more while it runs
    api.ok("DELETE", f"{path}/w")
    api.ok("PATCH", f"{path}/x", {"data": {"v": "2"}}, content_type="application/merge-patch+json")
    watcher.join(timeout=30)
    assert not watcher.is_alive(), f"the watch stopped after {len(events)} events: {events}"

    seen = [(e["type"], e["object"]["metadata"]["name"], e["object"]["data"]) for e in events]
    assert seen == [
        ("ADDED", "w", {"v": "1"}),
        ("MODIFIED", "w", {"v": "2"}),
        ("ADDED", "x", {"v": "1"}),
        ("DELETED", "w", {"v": "2"}),
        ("MODIFIED", "x", {"v": "2"}),
    ]
    revisions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == 5


# --- custom resources ----------------------------------------------------------------------


def test_crd_serves_validates_and_cleans_up_its_custom_objects(
    kubectl: Kubectl, api: ApiClient, apiserver: ApiServer, store: LocalCluster
) -> None:
    namespace(api, "custom")
    kubectl.apply(crd("widgets", "Widget"))
    wait_established(kubectl, f"widgets.{CRD_GROUP}")
    for i in range(7):
        widget = {
            "apiVersion": f"{CRD_GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": f"widget-{i}", "namespace": "custom"},
            "spec": {"size": i + 1, "color": "blue"},
        }
        kubectl.run("create", "-f", "-", stdin=json.dumps(widget))
    listed = kubectl.run("-n", "custom", "get", "widgets", "--chunk-size=3", "-o", "name")
    assert listed.stdout.split() == [f"widget.{CRD_GROUP}/widget-{i}" for i in range(7)]

    kubectl.run("-n", "custom", "patch", "widget", "widget-3", "--type=merge",
                "-p", '{"spec":{"color":"red"}}')  # fmt: skip
    kubectl.run("-n", "custom", "scale", "widget", "widget-4", "--replicas=42")
    w3 = kubectl.json("-n", "custom", "get", "widget", "widget-3")
    assert w3["spec"] == {"size": 4, "color": "red"}
    assert kubectl.json("-n", "custom", "get", "widget", "widget-4")["spec"]["size"] == 42
    api.ok(
        "PATCH",
        f"/apis/{CRD_GROUP}/v1/namespaces/custom/widgets/widget-4/status",
        {"status": {"size": 42}},
        content_type="application/merge-patch+json",
    )
    assert kubectl.json("-n", "custom", "get", "widget", "widget-4")["status"] == {"size": 42}

    # the schema is enforced before anything reaches the store
    bad = kubectl.run("-n", "custom", "patch", "widget", "widget-0", "--type=merge",
                      "-p", '{"spec":{"size":1000}}', check=False)  # fmt: skip
    assert bad.returncode != 0 and "should be less than or equal to 100" in bad.stderr

    kubectl.run("-n", "custom", "delete", "widget", "widget-0")
    prefix = f"{apiserver.config.etcd_prefix}/{CRD_GROUP}/widgets/custom/"
    assert store_keys(store, prefix) == {prefix + f"widget-{i}" for i in range(1, 7)}
    # deleting the CRD deletes its objects (the apiserver's own finalizer does it)
    kubectl.run("delete", "crd", f"widgets.{CRD_GROUP}", "--timeout=60s", timeout=70)
    assert store_keys(store, prefix) == set()


# --- an apiserver restart --------------------------------------------------------------------


INVENTORIED = [
    "/api/v1/namespaces",
    "/api/v1/configmaps",
    "/api/v1/secrets",
    "/apis/apps/v1/deployments",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
]


def inventory(api: ApiClient) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(list path, namespace, name) -> (uid, resourceVersion) of every object of the
    resources in :data:`INVENTORIED`, kube-system's left out: the apiserver itself rewrites
    some of its ConfigMaps when it starts."""
    found: dict[tuple[str, str, str], tuple[str, str]] = {}
    for path in INVENTORIED:
        for page in api.list_pages(path, limit=50):
            for item in page["items"]:
                meta = item["metadata"]
                if meta.get("namespace") != "kube-system":
                    key = (path, meta.get("namespace", ""), meta["name"])
                    found[key] = (meta["uid"], meta["resourceVersion"])
    return found


def test_everything_survives_an_apiserver_restart(
    kubectl: Kubectl, api: ApiClient, apiserver: ApiServer
) -> None:
    namespace(api, "survivor")
    kubectl.apply(crd("gadgets", "Gadget"))
    wait_established(kubectl, f"gadgets.{CRD_GROUP}")
    objects: list[tuple[str, JsonObject]] = [
        ("configmap", {**configmap("settings", mode="fast"), "metadata": {"name": "settings"}}),
        ("secret", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"},
                    "stringData": {"token": "abc"}}),
        ("deployment", deployment("svc", 2, "nginx:1.27")),
        ("gadget", {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Gadget",
                    "metadata": {"name": "g1"}, "spec": {"size": 9}}),
    ]  # fmt: skip
    for _, manifest in objects:
        kubectl.run("-n", "survivor", "create", "-f", "-", stdin=json.dumps(manifest))
    before = {kind: kubectl.json("-n", "survivor", "get", kind, m["metadata"]["name"])
              for kind, m in objects}  # fmt: skip
    everything = inventory(api)
    # what the tests above left (this one's objects among them), and the apiserver's own
    assert ("/api/v1/secrets", "survivor", "token") in everything

    apiserver.restart()
    api.close()

    for kind, manifest in objects:
        after = kubectl.json("-n", "survivor", "get", kind, manifest["metadata"]["name"])
        assert after == before[kind], kind
    assert inventory(api) == everything
    assert kubectl.json("get", "namespace", "survivor")["status"]["phase"] == "Active"
    # and the restarted apiserver writes as well as it reads
    kubectl.run("-n", "survivor", "scale", "deployment", "svc", "--replicas=4")
    assert kubectl.json("-n", "survivor", "get", "deployment", "svc")["spec"]["replicas"] == 4


# --- the store's leader dies under load --------------------------------------------------------


@dataclass
class WriteLog:
    """What a write loop did: each write's name, start and end (monotonic) and status
    (0 when it got no answer at all)."""

    writes: list[tuple[str, float, float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, start: float, end: float, status: int) -> None:
        with self.lock:
            self.writes.append((name, start, end, status))

    def acknowledged(self) -> list[tuple[str, float, float, int]]:
        with self.lock:
            return [w for w in self.writes if w[3] == 201]

    def acked_after(self, t: float) -> int:
        return sum(1 for w in self.acknowledged() if w[1] >= t)


def write_loop(api: ApiClient, ns: str, log: WriteLog, stop: threading.Event) -> None:
    """Create ConfigMaps one after another until ``stop``; every outcome is logged."""
    i = 0
    while not stop.is_set():
        name = f"load-{i:05d}"
        i += 1
        start = time.monotonic()
        try:
            status = api.request(
                "POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(name, i=str(i)),
                timeout=15,
            ).status  # fmt: skip
        except OSError:
            status = 0
        log.add(name, start, time.monotonic(), status)
        if status != 201:
            time.sleep(0.05)


SENTINEL = "zz-last"
"""The object written after the load, whose event ends the watch."""


def watch_until(
    api: ApiClient,
    path: str,
    resource_version: str,
    last: str,
    into: list[JsonObject],
    failures: list[BaseException],
) -> None:
    """Collect a watch's events until the object named ``last`` is added; a failure is kept
    for the test to report rather than lost in the thread."""
    try:
        for event in api.watch(path, resource_version, timeout_s=120):
            into.append(event)
            if event["object"]["metadata"]["name"] == last:
                return
    except Exception as exc:
        failures.append(exc)
    finally:
        api.close()


def write_stall(log: WriteLog, kill_at: float) -> float:
    """The longest time without an acknowledged write around the kill: from the last
    acknowledgement before ``kill_at`` to the first after it."""
    ends = sorted(w[2] for w in log.acknowledged())
    before = max((t for t in ends if t <= kill_at), default=kill_at)
    after = min(t for t in ends if t > kill_at)
    return after - before


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture
def load_namespace(api: ApiClient) -> Iterator[str]:
    namespace(api, "load")
    yield "load"


def test_acknowledged_writes_survive_the_store_leader_being_killed(
    apiserver: ApiServer,
    store: LocalCluster,
    load_namespace: str,
    record_testsuite_property: Callable[[str, object], None],
) -> None:
    log_start = len(apiserver.log_text())
    path = f"/api/v1/namespaces/{load_namespace}/configmaps"
    writer_api, watch_api = apiserver.client(), apiserver.client()
    # a client's watch, from before the first write to a last object written after the load
    events: list[JsonObject] = []
    watch_failures: list[BaseException] = []
    start_rv = watch_api.ok("GET", path)["metadata"]["resourceVersion"]
    watcher = threading.Thread(
        target=watch_until,
        args=(watch_api, path, start_rv, SENTINEL, events, watch_failures),
        daemon=True,
    )
    watcher.start()
    log, stop = WriteLog(), threading.Event()
    writer = threading.Thread(target=write_loop, args=(writer_api, load_namespace, log, stop))
    writer.start()
    try:
        wait_for(lambda: len(log.acknowledged()) >= 30, 30, "the load did not start")
        leader = store.leader()
        kill_at = time.monotonic()
        leader.kill()
        # a new leader takes over and the apiserver writes again without the dead member
        wait_for(lambda: log.acked_after(kill_at) >= 30, 60,
                 f"no writes after the leader was killed: {log.writes[-5:]}")  # fmt: skip
        store.restart(leader)
        store.wait_healthy()
        restart_at = time.monotonic()
        wait_for(lambda: log.acked_after(restart_at) >= 30, 60,
                 f"no writes after the member came back: {log.writes[-5:]}")  # fmt: skip
    finally:
        stop.set()
        writer.join(timeout=30)
        writer_api.ok("POST", path, configmap(SENTINEL))
        writer_api.close()
        watcher.join(timeout=30)

    acked = {w[0] for w in log.acknowledged()}
    failed = [w for w in log.writes if w[3] != 201]
    stall = write_stall(log, kill_at)
    record_testsuite_property("leader_kill_write_stall_s", round(stall, 3))
    record_testsuite_property("writes_acknowledged", len(acked))
    record_testsuite_property("writes_failed", len(failed))
    print(f"\nleader kill: write stall {stall:.2f}s, {len(acked)} writes acknowledged, "
          f"{len(failed)} failed: {[(w[0], w[3]) for w in failed]}")  # fmt: skip

    # every acknowledged ConfigMap is there, through the API and in the store
    api = apiserver.client()
    try:
        pages = api.list_pages(f"/api/v1/namespaces/{load_namespace}/configmaps", limit=100)
    finally:
        api.close()
    listed = {i["metadata"]["name"] for p in pages for i in p["items"]} - {SENTINEL}
    assert acked <= listed, f"acknowledged but lost: {sorted(acked - listed)}"
    # the watch went on across the failover: every object once, in the order of creation
    assert not watcher.is_alive() and not watch_failures, (
        f"the watch ended early or not at all after {len(events)} events: {watch_failures}"
    )
    watched = [e["object"]["metadata"]["name"] for e in events]
    assert {e["type"] for e in events} == {"ADDED"}
    assert watched == [*sorted(listed), SENTINEL]
    prefix = f"{apiserver.config.etcd_prefix}/configmaps/{load_namespace}/"
    in_store = {k.removeprefix(prefix) for k in store_keys(store, prefix)}
    assert acked <= in_store

    # the restarted member caught up with them too
    def member_has_all() -> bool:
        try:
            with store.client([leader]) as c:
                kvs = c.get(prefix.encode(), prefix=True, keys_only=True, serializable=True).kvs
        except ClientError:
            return False
        return acked <= {kv.key.decode().removeprefix(prefix) for kv in kvs}

    wait_for(member_has_all, 30, f"{leader.name} did not catch up")
    assert stall < 15, f"writes stalled {stall:.1f}s after the leader was killed"

    findings = logscan.scan(apiserver.log_text()[log_start:])
    assert findings.watch_errors == [], "\n".join(findings.watch_errors)
    assert findings.cache_restarts == [], "\n".join(findings.cache_restarts)


# --- what the apiserver's etcd client thinks of the store --------------------------------------
# The store reports etcd 3.5.13 and keeps its promise on progress notifications, so the
# apiserver keeps RequestWatchProgress on; and it allows etcd's keepalive pings.

KEEPALIVE_TIME_S = 30
"""How long the apiserver's etcd client lets a connection idle before it pings
(k8s.io/apiserver storagebackend/factory keepaliveTime)."""


def test_apiserver_trusts_the_stores_watch_progress_notifications(apiserver: ApiServer) -> None:
    findings = logscan.scan(apiserver.log_text())
    assert findings.progress_notify_unsupported == [], findings.progress_notify_unsupported[0]


def test_store_tolerates_the_etcd_clients_keepalive_pings(apiserver: ApiServer) -> None:
    """Runs last, once the apiserver has been up long enough for three keepalive pings on
    its idle connections (most of its watch caches see no traffic): a server that refuses
    pings more often than every few minutes answers the third with GOAWAY too_many_pings,
    which drops the connection and the watches on it."""
    idle_for = 3 * KEEPALIVE_TIME_S + 15
    time.sleep(max(0.0, apiserver.started_at + idle_for - time.monotonic()))
    findings = logscan.scan(apiserver.log_text())
    assert findings.too_many_pings == [], "\n".join(findings.too_many_pings[:5])
