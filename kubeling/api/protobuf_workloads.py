"""Protobuf field tables for apps/v1 Deployment and the pod template it embeds.

Why: `kubectl create deployment` POSTs its object as protobuf (see `kubeling.api.protobuf`), and
a Deployment drags in most of a PodSpec. The tables here follow the field numbers of k8s.io/api
`apps/v1` and `core/v1` and apimachinery `meta/v1` `generated.proto`; `keep_zero` follows the Go
types (pointers such as `replicas *int32`, and fields without `omitempty`) so the decoded object
is what the same Deployment looks like as JSON.

Coverage: everything the generator can send (name, images, `--replicas`, `--port`, a command)
plus the PodSpec and Container fields a hand-written template commonly uses: env (with
`valueFrom`), envFrom, resources, volume mounts, security context, tolerations, node selector.
Probes, lifecycle hooks, affinity, volumes and container security contexts have no table yet;
like any unknown field they are skipped.
"""

from __future__ import annotations

from kubeling.api.protobuf import (
    INLINE,
    INT_OR_STRING,
    LOCAL_OBJECT_REFERENCE,
    MAP,
    OBJECT_META,
    QUANTITY,
    TIME,
    Field,
    Message,
    _b,
    _i,
    _m,
    _msg,
    _s,
)


def _quantities(number: int, name: str) -> tuple[int, Field]:
    """A `map<string, Quantity>` such as `limits`, `requests` or `overhead`."""
    return number, Field(name, MAP, map_value=QUANTITY)


def _inline_ref(number: int) -> tuple[int, Field]:
    """An embedded LocalObjectReference: on the wire a message, in JSON just `name`."""
    return number, Field("localObjectReference", INLINE, message=LOCAL_OBJECT_REFERENCE)


# ---------------------------------------------------------------------------------------------
# meta/v1

LABEL_SELECTOR = _m(
    (1, Field("matchLabels", MAP)),
    _msg(2, "matchExpressions", _m(_s(1, "key"), _s(2, "operator"),
                                   _s(3, "values", repeated=True)), repeated=True),
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# core/v1: containers

CONTAINER_PORT = _m(
    _s(1, "name"), _i(2, "hostPort"), _i(3, "containerPort", keep_zero=True), _s(4, "protocol"),
    _s(5, "hostIP"),
)  # fmt: skip

# ConfigMapKeySelector and SecretKeySelector share their shape.
KEY_SELECTOR = _m(_inline_ref(1), _s(2, "key", keep_zero=True), _b(3, "optional", keep_zero=True))

ENV_VAR_SOURCE = _m(
    _msg(1, "fieldRef", _m(_s(1, "apiVersion"), _s(2, "fieldPath", keep_zero=True))),
    _msg(2, "resourceFieldRef", _m(_s(1, "containerName"), _s(2, "resource", keep_zero=True),
                                   (3, Field("divisor", QUANTITY)))),
    _msg(3, "configMapKeyRef", KEY_SELECTOR),
    _msg(4, "secretKeyRef", KEY_SELECTOR),
)  # fmt: skip

ENV_VAR = _m(_s(1, "name", keep_zero=True), _s(2, "value"), _msg(3, "valueFrom", ENV_VAR_SOURCE))

# ConfigMapEnvSource and SecretEnvSource share their shape.
ENV_SOURCE_REF = _m(_inline_ref(1), _b(2, "optional", keep_zero=True))

ENV_FROM_SOURCE = _m(
    _s(1, "prefix"), _msg(2, "configMapRef", ENV_SOURCE_REF), _msg(3, "secretRef", ENV_SOURCE_REF)
)

RESOURCE_REQUIREMENTS = _m(
    _quantities(1, "limits"),
    _quantities(2, "requests"),
    _msg(3, "claims", _m(_s(1, "name", keep_zero=True), _s(2, "request")), repeated=True),
)

VOLUME_MOUNT = _m(
    _s(1, "name", keep_zero=True), _b(2, "readOnly"), _s(7, "recursiveReadOnly", keep_zero=True),
    _s(3, "mountPath", keep_zero=True), _s(4, "subPath"),
    _s(5, "mountPropagation", keep_zero=True), _s(6, "subPathExpr"),
)  # fmt: skip

CONTAINER = _m(
    _s(1, "name", keep_zero=True), _s(2, "image"), _s(3, "command", repeated=True),
    _s(4, "args", repeated=True), _s(5, "workingDir"),
    _msg(6, "ports", CONTAINER_PORT, repeated=True),
    _msg(19, "envFrom", ENV_FROM_SOURCE, repeated=True),
    _msg(7, "env", ENV_VAR, repeated=True),
    _msg(8, "resources", RESOURCE_REQUIREMENTS),
    _msg(23, "resizePolicy", _m(_s(1, "resourceName", keep_zero=True),
                                _s(2, "restartPolicy", keep_zero=True)), repeated=True),
    _s(24, "restartPolicy", keep_zero=True),
    _msg(9, "volumeMounts", VOLUME_MOUNT, repeated=True),
    _msg(21, "volumeDevices", _m(_s(1, "name", keep_zero=True),
                                 _s(2, "devicePath", keep_zero=True)), repeated=True),
    _s(13, "terminationMessagePath"), _s(20, "terminationMessagePolicy"),
    _s(14, "imagePullPolicy"), _b(16, "stdin"), _b(17, "stdinOnce"), _b(18, "tty"),
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# core/v1: pods

TOLERATION = _m(
    _s(1, "key"), _s(2, "operator"), _s(3, "value"), _s(4, "effect"),
    _i(5, "tolerationSeconds", keep_zero=True),
)  # fmt: skip

POD_SECURITY_CONTEXT = _m(
    _msg(1, "seLinuxOptions", _m(_s(1, "user"), _s(2, "role"), _s(3, "type"), _s(4, "level"))),
    _i(2, "runAsUser", keep_zero=True), _i(6, "runAsGroup", keep_zero=True),
    _b(3, "runAsNonRoot", keep_zero=True), _i(4, "supplementalGroups", repeated=True),
    _s(12, "supplementalGroupsPolicy", keep_zero=True), _i(5, "fsGroup", keep_zero=True),
    _msg(7, "sysctls", _m(_s(1, "name", keep_zero=True), _s(2, "value", keep_zero=True)),
         repeated=True),
    _s(9, "fsGroupChangePolicy", keep_zero=True),
    _msg(10, "seccompProfile", _m(_s(1, "type", keep_zero=True),
                                  _s(2, "localhostProfile", keep_zero=True))),
    _s(13, "seLinuxChangePolicy", keep_zero=True),
)  # fmt: skip

POD_SPEC = _m(
    _msg(20, "initContainers", CONTAINER, repeated=True),
    _msg(2, "containers", CONTAINER, repeated=True),
    _s(3, "restartPolicy"), _i(4, "terminationGracePeriodSeconds", keep_zero=True),
    _i(5, "activeDeadlineSeconds", keep_zero=True), _s(6, "dnsPolicy"),
    (7, Field("nodeSelector", MAP)), _s(8, "serviceAccountName"), _s(9, "serviceAccount"),
    _b(21, "automountServiceAccountToken", keep_zero=True), _s(10, "nodeName"),
    _b(11, "hostNetwork"), _b(12, "hostPID"), _b(13, "hostIPC"),
    _b(27, "shareProcessNamespace", keep_zero=True),
    _msg(14, "securityContext", POD_SECURITY_CONTEXT),
    _msg(15, "imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True),
    _s(16, "hostname"), _s(17, "subdomain"), _s(19, "schedulerName"),
    _msg(22, "tolerations", TOLERATION, repeated=True),
    _s(24, "priorityClassName"), _i(25, "priority", keep_zero=True),
    _s(29, "runtimeClassName", keep_zero=True), _b(30, "enableServiceLinks", keep_zero=True),
    _s(31, "preemptionPolicy", keep_zero=True), _quantities(32, "overhead"),
    _b(35, "setHostnameAsFQDN", keep_zero=True), _msg(36, "os", _m(_s(1, "name", keep_zero=True))),
    _b(37, "hostUsers", keep_zero=True),
    _msg(38, "schedulingGates", _m(_s(1, "name", keep_zero=True)), repeated=True),
    _msg(40, "resources", RESOURCE_REQUIREMENTS), _s(41, "hostnameOverride", keep_zero=True),
)  # fmt: skip

POD_TEMPLATE_SPEC = _m(_msg(1, "metadata", OBJECT_META), _msg(2, "spec", POD_SPEC))

# ---------------------------------------------------------------------------------------------
# apps/v1

ROLLING_UPDATE_DEPLOYMENT = _m(
    # `*intstr.IntOrString`: an explicit 0 (say, maxUnavailable: 0) must survive.
    (1, Field("maxUnavailable", INT_OR_STRING, keep_zero=True)),
    (2, Field("maxSurge", INT_OR_STRING, keep_zero=True)),
)

DEPLOYMENT_SPEC = _m(
    _i(1, "replicas", keep_zero=True), _msg(2, "selector", LABEL_SELECTOR),
    _msg(3, "template", POD_TEMPLATE_SPEC),
    _msg(4, "strategy", _m(_s(1, "type"), _msg(2, "rollingUpdate", ROLLING_UPDATE_DEPLOYMENT))),
    _i(5, "minReadySeconds"), _i(6, "revisionHistoryLimit", keep_zero=True), _b(7, "paused"),
    _i(9, "progressDeadlineSeconds", keep_zero=True),
    _s(10, "podReplacementPolicy", keep_zero=True),
)  # fmt: skip

DEPLOYMENT_CONDITION = _m(
    _s(1, "type"), _s(2, "status"), (6, Field("lastUpdateTime", TIME)),
    (7, Field("lastTransitionTime", TIME)), _s(4, "reason"), _s(5, "message"),
)  # fmt: skip

DEPLOYMENT_STATUS = _m(
    _i(1, "observedGeneration"), _i(2, "replicas"), _i(3, "updatedReplicas"),
    _i(7, "readyReplicas"), _i(4, "availableReplicas"), _i(5, "unavailableReplicas"),
    _i(9, "terminatingReplicas", keep_zero=True),
    _msg(6, "conditions", DEPLOYMENT_CONDITION, repeated=True),
    _i(8, "collisionCount", keep_zero=True),
)  # fmt: skip

DEPLOYMENT = _m(
    _msg(1, "metadata", OBJECT_META),
    _msg(2, "spec", DEPLOYMENT_SPEC),
    _msg(3, "status", DEPLOYMENT_STATUS),
)

KINDS: dict[tuple[str, str], Message] = {
    ("apps/v1", "Deployment"): DEPLOYMENT,
}
