"""Protobuf request bodies, as real kubectl sends them and as hand-built edge cases.

The CAPTURED bodies were recorded from kubectl v1.37.1 (`kubectl create ...`) against a stub
server; they pin the decoder to what the client really emits (empty strings and zero
sub-messages included). The tiny encoder below builds the cases kubectl does not produce.
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


def test_the_envelope_kind_and_version_come_first() -> None:
    assert list(decode(bytes.fromhex(CM_LITERALS)))[:2] == ["apiVersion", "kind"]


def test_a_kind_without_a_table_is_415() -> None:
    with pytest.raises(ApiError) as info:
        decode(bytes.fromhex(DEPLOYMENT))
    assert info.value.code == 415
    assert info.value.reason == "UnsupportedMediaType"
    assert "apps/v1, Kind=Deployment" in info.value.message


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


def test_an_encoded_payload_is_415() -> None:
    with pytest.raises(ApiError) as info:
        decode(envelope("v1", "ConfigMap", b"", encoding="gzip"))
    assert info.value.code == 415


def test_an_empty_object_decodes_to_its_type() -> None:
    assert decode(envelope("v1", "Namespace", b"")) == {"apiVersion": "v1", "kind": "Namespace"}
