"""Protobuf request bodies, as real kubectl sends them and as hand-built edge cases.

The CAPTURED bodies were recorded from kubectl v1.37.1 (one Deployment from v1.32.4) running
`kubectl create ...` against a stub server; they pin the decoder to what the client really emits
(empty strings and zero sub-messages included). The expected Deployments are exactly what
`kubectl create deployment ... --dry-run=client -o json` prints. The tiny encoder below builds
the cases kubectl does not produce.
"""

from __future__ import annotations

import base64

import pytest

from kubeling.api.errors import ApiError
from kubeling.api.protobuf import decode

# kubectl create configmap web-config --from-literal=a=1 --from-literal=greeting=hello
CM_LITERALS = (
    "6b3873000a0f0a0276311209436f6e6669674d617012370a1a0a0a7765622d636f6e66696712001a0022002a"
    "0032003800420012060a016112013112110a086772656574696e67120568656c6c6f1a002200"
)
# kubectl create configmap binmix --from-file=blob=<\x00\x01\x02\xff\xfebinary> --from-literal=k=v
CM_BINARY = (
    "6b3873000a0f0a0276311209436f6e6669674d617012350a160a0662696e6d697812001a0022002a00320038"
    "00420012060a016b1201761a130a04626c6f62120b000102fffe62696e6172791a002200"
)
# kubectl create configmap labeled --from-literal=a=b -n other
CM_NAMESPACED = (
    "6b3873000a0f0a0276311209436f6e6669674d617012260a1c0a076c6162656c656412001a056f746865722200"
    "2a0032003800420012060a01611201621a002200"
)
# kubectl create namespace team-a
NAMESPACE = (
    "6b3873000a0f0a02763112094e616d657370616365121e0a160a067465616d2d6112001a0022002a0032003800"
    "420012001a020a001a002200"
)
# kubectl create secret generic creds --from-literal=user=admin --from-literal=pw=s3cr3t
#   --type=example.com/custom
SECRET_TYPED = (
    "6b3873000a0c0a027631120653656372657412480a150a05637265647312001a0022002a0032003800420012"
    "0c0a0270771206733363723374120d0a0475736572120561646d696e1a126578616d706c652e636f6d2f6375"
    "73746f6d1a002200"
)
# kubectl create secret generic plain --from-literal=x=y
SECRET_PLAIN = (
    "6b3873000a0c0a027631120653656372657412210a150a05706c61696e12001a0022002a0032003800420012"
    "060a01781201791a001a002200"
)
# kubectl create secret generic binsec --from-file=key.bin=<same binary file>
SECRET_BINARY = (
    "6b3873000a0c0a027631120653656372657412320a160a0662696e73656312001a0022002a00320038004200"
    "12160a076b65792e62696e120b000102fffe62696e6172791a001a002200"
)
# kubectl create serviceaccount builder
SERVICE_ACCOUNT = (
    "6b3873000a140a027631120e536572766963654163636f756e7412190a170a076275696c64657212001a0022"
    "002a003200380042001a002200"
)
# kubectl create service clusterip web --tcp=80:8080
SERVICE_CLUSTERIP = (
    "6b3873000a0d0a02763112075365727669636512690a1f0a0377656212001a0022002a003200380042005a0a"
    "0a03617070120377656212420a1b0a0738302d38303830120354435018502207080010903f1a002800120a0a"
    "0361707012037765621a002209436c757374657249503a00420052005a00600068001a020a001a002200"
)
# kubectl create service nodeport np --tcp=443:8443 --node-port=30443
SERVICE_NODEPORT = (
    "6b3873000a0d0a02763112075365727669636512690a1d0a026e7012001a0022002a003200380042005a090a"
    "0361707012026e7012440a1f0a083434332d38343433120354435018bb032207080010fb411a0028ebed0112"
    "090a0361707012026e701a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200"
)
# kubectl create deployment web --image=nginx:1.25
DEPLOY_IMAGE = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b0010a1f0a0377656212001a0022002a00"
    "3200380042005a0a0a036170701203776562127f0801120c0a0a0a0361707012037765621a650a1c0a0012001a"
    "0022002a003200380042005a0a0a036170701203776562124512270a056e67696e78120a6e67696e783a312e32"
    "352a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a01"
    "00c2010022020a00280038001a0c0800100018002000280038001a002200"
)
# kubectl create deployment web --image=nginx --replicas=3 --port=8080
DEPLOY_REPLICAS_PORT = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b9010a1f0a0377656212001a0022002a00"
    "3200380042005a0a0a0361707012037765621287010803120c0a0a0a0361707012037765621a6d0a1c0a001200"
    "1a0022002a003200380042005a0a0a036170701203776562124d122f0a056e67696e7812056e67696e782a0032"
    "0b0a00100018903f22002a0042006a007200800100880100900100a201001a00320042004a0052005800600068"
    "008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200"
)
# kubectl create deployment multi --image=a --image=b
DEPLOY_MULTI = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c8010a230a056d756c746912001a002200"
    "2a003200380042005a0c0a0361707012056d756c74691292010801120e0a0c0a0361707012056d756c74691a76"
    "0a1e0a0012001a0022002a003200380042005a0c0a0361707012056d756c74691254121a0a01611201612a0042"
    "006a007200800100880100900100a20100121a0a01621201622a0042006a007200800100880100900100a20100"
    "1a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c08001000180020"
    "00280038001a002200"
)
# kubectl create deployment cmd --image=busybox -- sleep 3600
DEPLOY_COMMAND = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412bd010a1f0a03636d6412001a0022002a00"
    "3200380042005a0a0a036170701203636d64128b010801120c0a0a0a036170701203636d641a710a1c0a001200"
    "1a0022002a003200380042005a0a0a036170701203636d64125112330a0762757379626f78120762757379626f"
    "781a05736c6565701a04333630302a0042006a007200800100880100900100a201001a00320042004a00520058"
    "00600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200"
)
# kubectl create deployment web -n other --image=nginx
DEPLOY_NAMESPACED = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b0010a240a0377656212001a056f746865"
    "7222002a003200380042005a0a0a036170701203776562127a0801120c0a0a0a0361707012037765621a600a1c"
    "0a0012001a0022002a003200380042005a0a0a036170701203776562124012220a056e67696e7812056e67696e"
    "782a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a01"
    "00c2010022020a00280038001a0c0800100018002000280038001a002200"
)
# kubectl create deployment zero --image=nginx --replicas=0 (`replicas` is *int32: 0 is kept)
DEPLOY_ZERO = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412af010a210a047a65726f12001a0022002a"
    "003200380042005a0b0a0361707012047a65726f127c0800120d0a0b0a0361707012047a65726f1a610a1d0a00"
    "12001a0022002a003200380042005a0b0a0361707012047a65726f124012220a056e67696e7812056e67696e78"
    "2a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100"
    "c2010022020a00280038001a0c0800100018002000280038001a002200"
)
# kubectl v1.32.4: create deployment old --image=nginx --replicas=2 --port=80
DEPLOY_KUBECTL_132 = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b8010a1f0a036f6c6412001a0022002a00"
    "3200380042005a0a0a0361707012036f6c641286010802120c0a0a0a0361707012036f6c641a6c0a1c0a001200"
    "1a0022002a003200380042005a0a0a0361707012036f6c64124c122e0a056e67696e7812056e67696e782a0032"
    "0a0a001000185022002a0042006a007200800100880100900100a201001a00320042004a005200580060006800"
    "8201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200"
)

BINARY = (
    "6b3873000a0f0a0276311209436f6e6669674d617012350a160a0662696e6d697812001a0022002a00320038"
    "00420012060a016b1201761a130a04626c6f62120b000102fffe62696e6172791a002200"
)
# kubectl create configmap labeled --from-literal=a=b -n other
CM_NAMESPACED = (
    "6b3873000a0f0a0276311209436f6e6669674d617012260a1c0a076c6162656c656412001a056f746865722200"
    "2a0032003800420012060a01611201621a002200"
)
# kubectl create namespace team-a
NAMESPACE = (
    "6b3873000a0f0a02763112094e616d657370616365121e0a160a067465616d2d6112001a0022002a0032003800"
    "420012001a020a001a002200"
)
# kubectl create secret generic creds --from-literal=user=admin --from-literal=pw=s3cr3t
#   --type=example.com/custom
SECRET_TYPED = (
    "6b3873000a0c0a027631120653656372657412480a150a05637265647312001a0022002a0032003800420012"
    "0c0a0270771206733363723374120d0a0475736572120561646d696e1a126578616d706c652e636f6d2f6375"
    "73746f6d1a002200"
)
# kubectl create secret generic plain --from-literal=x=y
SECRET_PLAIN = (
    "6b3873000a0c0a027631120653656372657412210a150a05706c61696e12001a0022002a0032003800420012"
    "060a01781201791a001a002200"
)
# kubectl create secret generic binsec --from-file=key.bin=<same binary file>
SECRET_BINARY = (
    "6b3873000a0c0a027631120653656372657412320a160a0662696e73656312001a0022002a00320038004200"
    "12160a076b65792e62696e120b000102fffe62696e6172791a001a002200"
)
# kubectl create serviceaccount builder
SERVICE_ACCOUNT = (
    "6b3873000a140a027631120e536572766963654163636f756e7412190a170a076275696c64657212001a0022"
    "002a003200380042001a002200"
)
# kubectl create service clusterip web --tcp=80:8080
SERVICE_CLUSTERIP = (
    "6b3873000a0d0a02763112075365727669636512690a1f0a0377656212001a0022002a003200380042005a0a"
    "0a03617070120377656212420a1b0a0738302d38303830120354435018502207080010903f1a002800120a0a"
    "0361707012037765621a002209436c757374657249503a00420052005a00600068001a020a001a002200"
)
# kubectl create service nodeport np --tcp=443:8443 --node-port=30443
SERVICE_NODEPORT = (
    "6b3873000a0d0a02763112075365727669636512690a1d0a026e7012001a0022002a003200380042005a090a"
    "0361707012026e7012440a1f0a083434332d38343433120354435018bb032207080010fb411a0028ebed0112"
    "090a0361707012026e701a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200"
)
# kubectl create deployment web --image=nginx:1.25 (a kind the decoder has no table for)
DEPLOYMENT = (
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b0010a1f0a0377656212001a0022002a"
    "003200380042005a0a0a036170701203776562127f0801120c0a0a0a0361707012037765621a650a1c0a0012"
    "001a0022002a003200380042005a0a0a036170701203776562124512270a056e67696e78120a6e67696e783a"
    "312e32352a0042006a007200800100880100900100a201001a00320042004a00520058006000680082010089"
    "01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200"
)

BINARY = b"\x00\x01\x02\xff\xfebinary"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (CM_LITERALS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"},
                       "data": {"a": "1", "greeting": "hello"}}),
        (CM_BINARY, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "binmix"},
                     "data": {"k": "v"}, "binaryData": {"blob": b64(BINARY)}}),
        (CM_NAMESPACED, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "labeled", "namespace": "other"},
                         "data": {"a": "b"}}),
        (NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"},
                     "spec": {}, "status": {}}),
        (SECRET_TYPED, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                        "data": {"user": b64(b"admin"), "pw": b64(b"s3cr3t")},
                        "type": "example.com/custom"}),
        (SECRET_PLAIN, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain"},
                        "data": {"x": b64(b"y")}}),
        (SECRET_BINARY, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "binsec"},
                         "data": {"key.bin": b64(BINARY)}}),
        (SERVICE_ACCOUNT, {"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": {"name": "builder"}}),
        (SERVICE_CLUSTERIP, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80,
                                "targetPort": 8080}],
                     "selector": {"app": "web"}, "type": "ClusterIP"},
            "status": {"loadBalancer": {}},
        }),
        (SERVICE_NODEPORT, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "np", "labels": {"app": "np"}},
            "spec": {"ports": [{"name": "443-8443", "protocol": "TCP", "port": 443,
                                "targetPort": 8443, "nodePort": 30443}],
                     "selector": {"app": "np"}, "type": "NodePort"},
            "status": {"loadBalancer": {}},
        }),
    ],
)  # fmt: skip
def test_bodies_captured_from_kubectl(body: str, expected: dict[str, object]) -> None:
    assert decode(bytes.fromhex(body)) == expected


def deployment(
    name: str, containers: list[dict[str, object]], *, replicas: int = 1, namespace: str = ""
) -> dict[str, object]:
    """The object `kubectl create deployment` builds: everything keyed on `app: <name>`."""
    labels = {"app": name}
    meta: dict[str, object] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
                 "strategy": {}},
        "status": {},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (DEPLOY_IMAGE, deployment("web", [{"name": "nginx", "image": "nginx:1.25",
                                           "resources": {}}])),
        (DEPLOY_REPLICAS_PORT, deployment("web", [{"name": "nginx", "image": "nginx",
                                                   "ports": [{"containerPort": 8080}],
                                                   "resources": {}}], replicas=3)),
        (DEPLOY_MULTI, deployment("multi", [{"name": "a", "image": "a", "resources": {}},
                                            {"name": "b", "image": "b", "resources": {}}])),
        (DEPLOY_COMMAND, deployment("cmd", [{"name": "busybox", "image": "busybox",
                                             "command": ["sleep", "3600"], "resources": {}}])),
        (DEPLOY_NAMESPACED, deployment("web", [{"name": "nginx", "image": "nginx",
                                                "resources": {}}], namespace="other")),
        (DEPLOY_ZERO, deployment("zero", [{"name": "nginx", "image": "nginx", "resources": {}}],
                                 replicas=0)),
        (DEPLOY_KUBECTL_132, deployment("old", [{"name": "nginx", "image": "nginx",
                                                 "ports": [{"containerPort": 80}],
                                                 "resources": {}}], replicas=2)),
    ],
)  # fmt: skip
def test_deployments_captured_from_kubectl(body: str, expected: dict[str, object]) -> None:
    assert decode(bytes.fromhex(body)) == expected


def test_the_envelope_kind_and_version_come_first() -> None:
    assert list(decode(bytes.fromhex(CM_LITERALS)))[:2] == ["apiVersion", "kind"]


@pytest.mark.parametrize("cut", [5, 12, 30, len(bytes.fromhex(CM_LITERALS)) - 3])
def test_truncated_bodies_are_400(cut: int) -> None:
    with pytest.raises(ApiError) as info:
        decode(bytes.fromhex(CM_LITERALS)[:cut])
    assert info.value.code == 400


def test_a_body_without_the_magic_is_400() -> None:
    with pytest.raises(ApiError) as info:
        decode(b'{"kind":"ConfigMap"}')
    assert info.value.code == 400


# ---------------------------------------------------------------------------------------------
# A minimal encoder for the cases kubectl never sends.


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def ln(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def vi(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return ln(number, ln(1, key) + ln(2, value))


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    type_meta = ln(1, api_version) + ln(2, kind)
    return b"k8s\x00" + ln(1, type_meta) + ln(2, raw) + ln(3, encoding) + ln(4, "")


def test_metadata_fields() -> None:
    created = ln(8, vi(1, 1_700_000_000) + vi(2, 5))
    deleted = ln(9, vi(1, 1_700_000_600))
    owner = ln(13, ln(5, "apps/v1") + ln(1, "ReplicaSet") + ln(3, "web-1") + ln(4, "u-1")
               + vi(6, 1) + vi(7, 0))  # fmt: skip
    meta = (
        ln(2, "job-") + ln(3, "ns1") + ln(5, "uid-7") + ln(6, "42") + vi(7, 3) + created + deleted
        + vi(10, 30) + entry(11, "app", "web") + entry(11, "tier", "") + entry(12, "note", "hi")
        + owner + ln(14, "example.com/cleanup") + ln(14, "second")
    )  # fmt: skip
    obj = decode(envelope("v1", "ConfigMap", ln(1, meta)))
    assert obj["metadata"] == {
        "generateName": "job-",
        "namespace": "ns1",
        "uid": "uid-7",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2023-11-14T22:13:20Z",
        "deletionTimestamp": "2023-11-14T22:23:20Z",
        "deletionGracePeriodSeconds": 30,
        "labels": {"app": "web", "tier": ""},
        "annotations": {"note": "hi"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                             "uid": "u-1", "controller": True, "blockOwnerDeletion": False}],
        "finalizers": ["example.com/cleanup", "second"],
    }  # fmt: skip


def test_secret_string_data_type_and_immutable() -> None:
    raw = (
        ln(1, ln(1, "s")) + entry(2, "bin", BINARY) + ln(3, "kubernetes.io/basic-auth")
        + entry(4, "username", "admin") + vi(5, 1)
    )  # fmt: skip
    assert decode(envelope("v1", "Secret", raw)) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"bin": b64(BINARY)}, "type": "kubernetes.io/basic-auth",
        "stringData": {"username": "admin"}, "immutable": True,
    }  # fmt: skip


def test_pointer_fields_keep_an_explicit_false() -> None:
    cm = decode(envelope("v1", "ConfigMap", ln(1, ln(1, "c")) + vi(4, 0)))
    assert cm["immutable"] is False
    sa = decode(envelope("v1", "ServiceAccount", ln(1, ln(1, "sa")) + vi(4, 0)))
    assert sa["automountServiceAccountToken"] is False


def test_map_entries_without_a_value_are_empty() -> None:
    raw = ln(1, ln(1, "c")) + ln(2, ln(1, "empty")) + ln(3, ln(1, "nothing"))
    obj = decode(envelope("v1", "ConfigMap", raw))
    assert obj["data"] == {"empty": ""}
    assert obj["binaryData"] == {"nothing": ""}


def test_service_account_references() -> None:
    secret_ref = ln(2, ln(1, "Secret") + ln(3, "token") + ln(2, "default"))
    raw = ln(1, ln(1, "sa")) + secret_ref + ln(3, ln(1, "regcred"))
    assert decode(envelope("v1", "ServiceAccount", raw)) == {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
        "secrets": [{"kind": "Secret", "name": "token", "namespace": "default"}],
        "imagePullSecrets": [{"name": "regcred"}],
    }  # fmt: skip


def test_named_target_port_and_negative_ints() -> None:
    port = ln(1, ln(4, vi(1, 1) + ln(3, "http")) + vi(3, 80))
    spec = port + vi(12, -1 & ((1 << 64) - 1))
    obj = decode(envelope("v1", "Service", ln(1, ln(1, "s")) + ln(2, spec)))
    assert obj["spec"]["ports"] == [{"port": 80, "targetPort": "http"}]
    assert obj["spec"]["healthCheckNodePort"] == -1


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    fixed64 = varint(99 << 3 | 1) + bytes(8)
    fixed32 = varint(98 << 3 | 5) + bytes(4)
    raw = ln(1, ln(1, "c") + ln(17, b"managed-fields")) + vi(97, 5) + fixed64 + fixed32
    assert decode(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
    }  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        vi(1, 5),  # metadata must be length-delimited
        ln(1, ln(1, b"\xff\xfe")),  # names are UTF-8
        varint(1 << 3 | 3),  # groups are not used by Kubernetes
        ln(1, ln(1, "c"))[:-1],  # the inner message is cut short
        b"\x80" * 11,  # an over-long varint
    ],
)
def test_corrupt_objects_are_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        decode(envelope("v1", "ConfigMap", raw))
    assert info.value.code == 400


def test_an_envelope_without_a_type_is_400() -> None:
    with pytest.raises(ApiError) as info:
        decode(b"k8s\x00" + ln(2, ln(1, ln(1, "c"))))
    assert info.value.code == 400


def test_a_kind_without_a_table_is_415() -> None:
    raw = ln(1, ln(1, "nightly")) + ln(2, ln(1, "* * * * *"))
    with pytest.raises(ApiError) as info:
        decode(envelope("batch/v1", "CronJob", raw))
    assert info.value.code == 415
    assert info.value.reason == "UnsupportedMediaType"
    assert "batch/v1, Kind=CronJob" in info.value.message


def test_a_known_kind_in_another_version_is_415() -> None:
    with pytest.raises(ApiError) as info:
        decode(envelope("apps/v1beta1", "Deployment", ln(1, ln(1, "d"))))
    assert info.value.code == 415


def test_an_encoded_payload_is_415() -> None:
    with pytest.raises(ApiError) as info:
        decode(envelope("v1", "ConfigMap", b"", encoding="gzip"))
    assert info.value.code == 415


def test_an_empty_object_decodes_to_its_type() -> None:
    assert decode(envelope("v1", "Namespace", b"")) == {"apiVersion": "v1", "kind": "Namespace"}


# ---------------------------------------------------------------------------------------------
# Deployment fields the generator never sets.


def quantity(value: str) -> bytes:
    return ln(1, value)


def test_deployment_strategy_selector_pointers_and_status() -> None:
    expression = ln(2, ln(1, "tier") + ln(2, "In") + ln(3, "web") + ln(3, "api"))
    selector = entry(1, "app", "web") + expression
    rolling = ln(1, vi(1, 0) + vi(2, 0)) + ln(2, vi(1, 1) + ln(3, "25%"))
    strategy = ln(1, "RollingUpdate") + ln(2, rolling)
    spec = (
        vi(1, 2) + ln(2, selector) + ln(4, strategy) + vi(5, 0) + vi(6, 0) + vi(7, 0)
        + vi(9, 600) + ln(10, "TerminationComplete")
    )  # fmt: skip
    condition = ln(6, ln(1, "Available") + ln(2, "True") + ln(6, vi(1, 1_700_000_000))
                   + ln(7, vi(1, 1_700_000_000)) + ln(4, "MinimumReplicasAvailable"))  # fmt: skip
    status = vi(1, 4) + vi(2, 2) + vi(3, 2) + vi(7, 2) + vi(4, 2) + vi(5, 0) + condition + vi(8, 0)
    obj = decode(envelope("apps/v1", "Deployment", ln(1, ln(1, "d")) + ln(2, spec) + ln(3, status)))
    assert obj["spec"] == {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In",
                                           "values": ["web", "api"]}]},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        "revisionHistoryLimit": 0,
        "progressDeadlineSeconds": 600,
        "podReplacementPolicy": "TerminationComplete",
    }  # fmt: skip
    assert obj["status"] == {
        "observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
        "availableReplicas": 2, "collisionCount": 0,
        "conditions": [{"type": "Available", "status": "True",
                        "lastUpdateTime": "2023-11-14T22:13:20Z",
                        "lastTransitionTime": "2023-11-14T22:13:20Z",
                        "reason": "MinimumReplicasAvailable"}],
    }  # fmt: skip


def test_pod_template_containers_env_and_resources() -> None:
    config_key = ln(3, ln(1, ln(1, "settings")) + ln(2, "level"))
    secret_key = ln(4, ln(1, ln(1, "creds")) + ln(2, "token") + vi(3, 0))
    field_ref = ln(1, ln(1, "v1") + ln(2, "metadata.name"))
    resource_ref = ln(2, ln(2, "limits.memory") + ln(3, quantity("1Mi")))
    env = (
        ln(7, ln(1, "MODE") + ln(2, "fast")) + ln(7, ln(1, "EMPTY") + ln(2, ""))
        + ln(7, ln(1, "LEVEL") + ln(3, config_key)) + ln(7, ln(1, "TOKEN") + ln(3, secret_key))
        + ln(7, ln(1, "POD") + ln(3, field_ref)) + ln(7, ln(1, "MEM") + ln(3, resource_ref))
    )  # fmt: skip
    env_from = ln(19, ln(1, "CFG_") + ln(2, ln(1, ln(1, "settings")) + vi(2, 1)))
    resources = ln(8, entry(1, "memory", quantity("128Mi")) + entry(2, "cpu", quantity("250m")))
    mount = ln(9, ln(1, "data") + vi(2, 1) + ln(3, "/data") + ln(4, ""))
    port = ln(6, ln(1, "http") + vi(3, 80) + ln(4, "TCP"))
    container = (
        ln(1, "app") + ln(2, "img:1") + ln(4, "--verbose") + ln(5, "/srv") + port + env + env_from
        + resources + mount + ln(13, "/dev/termination-log") + ln(20, "File")
        + ln(14, "IfNotPresent") + vi(16, 0) + vi(18, 1)
    )  # fmt: skip
    init = ln(1, "init") + ln(2, "busybox") + ln(3, "true") + ln(8, b"")
    toleration = ln(1, "node.kubernetes.io/not-ready") + ln(2, "Exists") + ln(4, "NoExecute")
    packed = ln(4, varint(2000) + varint(3000))
    security = vi(2, 0) + vi(3, 0) + vi(4, 1000) + packed + ln(10, ln(1, "RuntimeDefault"))
    pod_spec = (
        ln(20, init) + ln(2, container) + ln(3, "Always") + vi(4, 0) + ln(6, "ClusterFirst")
        + entry(7, "disk", "ssd") + ln(8, "builder") + vi(11, 0) + ln(14, security)
        + ln(15, ln(1, "regcred")) + ln(19, "default-scheduler")
        + ln(22, toleration + vi(5, 0)) + vi(30, 0)
    )  # fmt: skip
    template = ln(1, ln(11, ln(1, "app") + ln(2, "web"))) + ln(2, pod_spec)
    obj = decode(envelope("apps/v1", "Deployment", ln(2, ln(3, template))))
    assert obj["spec"]["template"] == {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"],
                                "resources": {}}],
            "containers": [{
                "name": "app", "image": "img:1", "args": ["--verbose"], "workingDir": "/srv",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [
                    {"name": "MODE", "value": "fast"},
                    {"name": "EMPTY"},
                    {"name": "LEVEL",
                     "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                                     "key": "token",
                                                                     "optional": False}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                               "fieldPath": "metadata.name"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                        "resource": "limits.memory", "divisor": "1Mi"}}},
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings",
                                                                "optional": True}}],
                "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m"}},
                "volumeMounts": [{"name": "data", "readOnly": True, "mountPath": "/data"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
                "tty": True,
            }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
            "dnsPolicy": "ClusterFirst", "nodeSelector": {"disk": "ssd"},
            "serviceAccountName": "builder",
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False,
                                "supplementalGroups": [1000, 2000, 3000],
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "imagePullSecrets": [{"name": "regcred"}], "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 0}],
            "enableServiceLinks": False,
        },
    }  # fmt: skip


def test_a_packed_integer_list_must_be_well_formed() -> None:
    security = ln(4, b"\x80")  # a packed list ending inside a varint
    raw = ln(2, ln(3, ln(2, ln(14, security))))
    with pytest.raises(ApiError) as info:
        decode(envelope("apps/v1", "Deployment", raw))
    assert info.value.code == 400
