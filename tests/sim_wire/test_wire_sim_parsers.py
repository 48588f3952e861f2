"""What the simulated API reads from a request body or query that no schema checks first (a
protobuf SelfSubjectAccessReview, a continue token) gives a value or a 400, never a crash."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.sim import paging, protobuf
from autoscaler.sim.kubestate import BadRequestError

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (short payloads only)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def review_bytes(verb: str, resource: str, namespace: str) -> bytes:
    attributes = (_field(1, namespace.encode()) + _field(2, verb.encode())
                  + _field(5, resource.encode()))
    review = _field(2, _field(1, attributes))  # SelfSubjectAccessReview.spec.resourceAttributes
    return protobuf.MAGIC + _field(2, review)  # runtime.Unknown.raw


def test_a_protobuf_review_is_read() -> None:
    body = protobuf.self_subject_access_review(review_bytes("list", "pods", "tracardi"))
    assert body["spec"] == {"resourceAttributes": {
        "namespace": "tracardi", "verb": "list", "resource": "pods"}}


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.binary(max_size=200).map(lambda b: protobuf.MAGIC + b),
                 st.integers(1, 60).map(lambda n: review_bytes("get", "pods", "ns")[:n])))
def test_any_protobuf_body_is_read_or_refused(body: bytes) -> None:
    for read in (protobuf.self_subject_access_review, protobuf.self_subject_rules_review):
        try:
            got = read(body)
        except BadRequestError as exc:
            assert str(exc)
        else:
            assert got["kind"].startswith("SelfSubject") and isinstance(got["spec"], dict)


def _token(raw: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


@FUZZ
@given(st.one_of(
    st.text(max_size=80),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.sampled_from(["v", "rv", "start", "x"]), inner,
                                   max_size=4), max_leaves=8).map(_token)))
def test_any_continue_token_is_read_or_refused(token: str) -> None:
    try:
        rv, start = paging.decode(token)
    except BadRequestError as exc:
        assert "invalid continue token" in str(exc)
    else:
        assert (rv > 0 or rv == -1) and isinstance(start, str)


def test_a_token_round_trips() -> None:
    assert paging.decode(paging.encode(42, "tracardi/a\x00")) == (42, "tracardi/a\x00")
