"""Kubernetes' protobuf encoding, read as far as the simulated API needs it.

kubectl sends some requests in protobuf whatever the server says (`kubectl auth can-i` posts
its SelfSubjectAccessReview so, and does not retry in JSON). A protobuf body is the magic
`k8s\\x00` and a `runtime.Unknown` whose `raw` field holds the object. The answer may be JSON:
kubectl accepts `application/json` too.

Field numbers are those of k8s.io/api's generated.proto files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from autoscaler.sim.kubestate import JSON, BadRequestError

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

#: authorization/v1 ResourceAttributes and NonResourceAttributes: field number -> JSON name.
_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                        6: "subresource", 7: "name"}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def fields(data: bytes) -> Iterator[tuple[int, bytes | int]]:
    """(field number, value) of one message: bytes for length-delimited fields, else ints."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated field")
            yield number, data[at:at + length]
            at += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if at + size > len(data):
                raise ValueError("truncated field")
            yield number, int.from_bytes(data[at:at + size], "little")
            at += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _strings(data: bytes, names: Mapping[int, str]) -> JSON:
    return {names[n]: v.decode() for n, v in fields(data)
            if n in names and isinstance(v, bytes) and v}


def _spec(body: bytes) -> bytes:
    """The object's `spec` (field 2 of the object in `runtime.Unknown.raw`, field 2)."""
    if not body.startswith(MAGIC):
        raise ValueError("no k8s protobuf magic")
    raw = next((v for n, v in fields(body[len(MAGIC):]) if n == 2 and isinstance(v, bytes)),
               b"")
    return next((v for n, v in fields(raw) if n == 2 and isinstance(v, bytes)), b"")


def self_subject_access_review(body: bytes) -> JSON:
    """The JSON form of a protobuf SelfSubjectAccessReview (its spec); BadRequestError if the
    body is not one."""
    spec: JSON = {}
    try:
        for m, attributes in fields(_spec(body)):
            if m == 1 and isinstance(attributes, bytes):
                spec["resourceAttributes"] = _strings(attributes, _RESOURCE_ATTRIBUTES)
            elif m == 2 and isinstance(attributes, bytes):
                spec["nonResourceAttributes"] = _strings(attributes, _NON_RESOURCE_ATTRIBUTES)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"unable to decode the protobuf body: {exc}") from None
    return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "spec": spec}


def self_subject_rules_review(body: bytes) -> JSON:
    """The JSON form of a protobuf SelfSubjectRulesReview (its spec's namespace)."""
    try:
        spec = _strings(_spec(body), {1: "namespace"})
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"unable to decode the protobuf body: {exc}") from None
    return {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
            "spec": spec}
