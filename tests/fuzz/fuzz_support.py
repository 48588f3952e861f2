"""Shared pieces of the fuzz tests: settings, outcome checks, example counts and strategies.

Every target runs under `fuzz_settings`: derandomized, so CI feeds the same inputs on every run,
and without a deadline. `FUZZ_EXAMPLES` (a multiplier, default 1) scales every target's example
count for a long local run: `FUZZ_EXAMPLES=50 .venv/bin/pytest tests/fuzz`.

`expect` is the one rule of every target: a parser returns a value, which the test then checks,
or raises one of its documented error types with a message. Anything else propagates and fails
the example as a crash. It also counts the examples per target; `conftest.py` writes the counts
and `CRASHES_FIXED` to `out/fuzz-figures.json` when the session ends.

The strategies make three kinds of input: arbitrary bytes and JSON trees, real-shaped documents
(the captures in `../shared/samples/`) with values swapped for hostile ones and keys dropped,
and those documents' bytes truncated or corrupted.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")) / "samples"
FIGURES = REPO / "out" / "fuzz-figures.json"


def _scale() -> float:
    raw = os.environ.get("FUZZ_EXAMPLES", "").strip() or "1"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FUZZ_EXAMPLES must be a number (a multiplier), got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"FUZZ_EXAMPLES must be > 0, got {raw!r}")
    return value


SCALE = _scale()


def fuzz_settings(examples: int) -> settings:
    """`examples` per run in CI, times `FUZZ_EXAMPLES`; the same inputs on every run."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


#: Examples run per target in this session, and how each ended.
EXAMPLES: Counter[str] = Counter()
PARSED: Counter[str] = Counter()
REJECTED: Counter[str] = Counter()

_DEEP_JSON = ("body nested 3000 deep (b'[' * 3000) -> RecursionError from json.loads in "
              "Reply.json; fixed: FetchError('invalid JSON: nested too deeply')")

#: Crashes these targets found, each fixed in the parser: input -> exception; fix.
CRASHES_FIXED: dict[str, list[str]] = {
    "reply-json": [_DEEP_JSON, "the same body -> RecursionError from Reply.server_message "
                               "(the error-status path); fixed: no server message ('')"],
    "pulsar-stats": [_DEEP_JSON],
    "tracardi-queue-backlog": [_DEEP_JSON],
    "prometheus-query": [_DEEP_JSON],
    "elasticsearch-health": [_DEEP_JSON],
    "pulsar-broker-health": [
        "HTTP 404 with a body nested 3000 deep -> RecursionError from Reply.server_message "
        "(via error_detail); fixed: no server message, reason 'HTTP 404'"],
    "values-checked": [
        "the JSON integer 10**400 -> OverflowError from float(); fixed: RejectedValueError "
        "('absurd backlog above 1e308')"],
    "config-yaml-garbage": [
        "'&x [*x]' (a node containing itself) -> RecursionError in the YAML walk; fixed: "
        "ConfigError 'refers to itself (recursive alias)'",
        "'!!timestamp ' -> AttributeError inside PyYAML; fixed: ConfigError \"'' is not a "
        "valid tag:yaml.org,2002:timestamp\"",
        "'!!int ' -> IndexError inside PyYAML; fixed: ConfigError (not a valid !!int)",
        "'!!float ' -> IndexError inside PyYAML; fixed: ConfigError (not a valid !!float)",
    ],
    "config-mutated": [
        "policies/tracardi.yaml with a value replaced by a flow sequence 3000 deep -> "
        "RecursionError in PyYAML's composer (after about a second in its scanner, which is "
        "quadratic in flow depth); fixed: composing stops at MAX_YAML_DEPTH (32) with "
        "ConfigError 'nested more than 32 levels deep', also for nesting built from aliases"],
    "kube-cpu-quantity": [
        "' ' -> IndexError", "'NaN' -> ValueError('cannot convert NaN to integer')",
        "'-Infinity' -> OverflowError", "'1e999999' -> decimal.Overflow",
        "'-1' -> -1000 (negative millicores returned)",
        "fixed: MalformedObjectError for each, and quantities past 10^16 of their unit are "
        "refused before int() (a million-digit integer)"],
    "kube-pod-json": [
        "[] -> AttributeError", "metadata, spec or status true -> AttributeError",
        "status.conditions true -> TypeError", "status.startTime true -> TypeError",
        "fixed: MalformedObjectError naming the field"],
    "kube-pod-model": [
        "empty body (a V1Pod without metadata) -> AttributeError; fixed: MalformedObjectError",
        "metadata true (V1ObjectMeta without a name) -> PodInfo.name None; fixed: ''",
        "spec.containers [null] -> AttributeError on None.resources; fixed: "
        "MalformedObjectError (null entries in containers, conditions, containerStatuses)"],
    "kube-deployment-model": [
        "metadata null -> AttributeError",
        "status.readyReplicas a nested list (the client passes it through) -> TypeError",
        "status.readyReplicas -1 -> a negative ready count",
        "fixed: MalformedObjectError"],
    "kube-lease-model": [
        "empty body (a V1Lease without metadata) -> AttributeError; fixed: "
        "MalformedObjectError, also for a Lease without resourceVersion (an update without "
        "one would be unconditional)"],
}


def expect(target: str, call: Callable[[], T], errors: tuple[type[Exception], ...]) -> T | None:
    """`call()`'s value, or None when it raised one of `errors` with a message.

    Any other exception is a crash and propagates, so Hypothesis shrinks and reports the input.
    """
    EXAMPLES[target] += 1
    try:
        value = call()
    except errors as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        REJECTED[target] += 1
        return None
    PARSED[target] += 1
    return value


def expect_rejected(target: str, call: Callable[[], object],
                    error: type[Exception]) -> Exception:
    """The `error` that `call()` must raise, with a message; a value or another error fails."""
    EXAMPLES[target] += 1
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value).strip(), f"{type(raised.value).__name__} without a message"
    REJECTED[target] += 1
    return raised.value


def sample_text(relative: str) -> str:
    return (SAMPLES / relative).read_text(encoding="utf-8")


def sample_json(relative: str) -> Any:
    return json.loads(sample_text(relative))


# -- hostile values ------------------------------------------------------------------------------

# Placeholders that `expand` turns into text no Python object can be dumped as: nesting deeper
# than the dumpers' recursion limit, and integer literals past Python's 4300-digit limit.
_PLACEHOLDER = re.compile(r'"(?:\\u0000|\\0)(deep|digits)(\d+)(?:\\u0000|\\0)"')


def deep(depth: int) -> str:
    return f"\x00deep{depth}\x00"


def digits(count: int) -> str:
    return f"\x00digits{count}\x00"


def expand(text: str) -> str:
    """Replace the `deep`/`digits` placeholders in dumped JSON or YAML by what they stand for."""

    def one(match: re.Match[str]) -> str:
        size = int(match.group(2))
        return "[" * size + "]" * size if match.group(1) == "deep" else "9" * size

    return _PLACEHOLDER.sub(one, text)


SPECIAL_SCALARS: tuple[object, ...] = (
    None, True, False, 0, -1, -0.0, 0.5, 1e15, 1e15 + 1, 1.7976931348623157e308, 5e-324,
    float("nan"), float("inf"), float("-inf"), 2**63, -(2**63) - 1, 10**400, -(10**400),
    10**4000, "", " ", "NaN", "Infinity", "-1", "1e999", "1.0e+999", "0x10", "\uff11\uff12", "\x00",
    "ok", "green", "yellow", "red", "True", "null", "100m", "-5", "1e999999m", "∞",
    "2019-08-09T05:12:19Z", "0001-01-01T00:00:00", "9999-12-31T23:59:59+14:00", "x" * 5000,
)
#: Nesting past any recursion limit and an integer literal past Python's digit limit.
SPECIAL_TEXTS = (deep(50), deep(3000), deep(100_000), digits(5000))

hostile_scalars: st.SearchStrategy[object] = st.one_of(
    st.sampled_from(SPECIAL_SCALARS),
    st.sampled_from(SPECIAL_TEXTS),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
    st.text(max_size=30),
    # Plausible values too, so that a mutated document often still parses and its value is
    # checked: counts, rates, and numbers as the strings Prometheus and Kubernetes send.
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=1e6),
    st.floats().map(str),
    st.integers().map(str),
)


def json_trees(keys: Sequence[str] = ()) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values whose objects often use `keys`, the ones a parser looks up."""
    key: st.SearchStrategy[str] = st.text(max_size=12)
    if keys:
        key = st.sampled_from(tuple(keys)) | key
    return st.recursive(
        hostile_scalars,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(key, kids, max_size=5),
        max_leaves=12,
    )


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) of a document, depth first."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            out.append((node, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return out


@st.composite
def mutated(draw: st.DrawFn, doc: Any, *, keys: Sequence[str] = ()) -> Any:
    """`doc` with one to three changes: a value made hostile, a key or item dropped, a key
    added."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc)
        if not slots:
            return draw(json_trees(keys))
        container, key = draw(st.sampled_from(slots))
        how = draw(st.sampled_from(("replace", "replace", "tree", "drop", "add")))
        if how == "drop":
            del container[key]
        elif how == "add" and isinstance(container, dict):
            name = draw(st.sampled_from(tuple(keys)) if keys else st.text(max_size=8))
            container[name] = draw(hostile_scalars)
        elif how == "tree":
            container[key] = draw(json_trees(keys))
        else:
            container[key] = draw(hostile_scalars)
    return doc


_JUNK = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b'"', b"}", b"]", b",", b"NaN",
         b"-Infinity", b"1e999", b"\xef\xbb\xbf")


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` as it is, cut short, or with junk (often invalid UTF-8) put in or written over."""
    how = draw(st.sampled_from(("keep", "keep", "truncate", "insert", "overwrite")))
    if how == "keep" or not data:
        return data
    at = draw(st.integers(0, len(data)))
    if how == "truncate":
        return data[:at]
    junk = draw(st.sampled_from(_JUNK) | st.binary(min_size=1, max_size=8))
    if how == "insert":
        return data[:at] + junk + data[at:]
    return data[:at] + junk + data[at + len(junk):]


def dump_json(value: Any) -> bytes:
    """JSON as a lenient server might send it: NaN and Infinity allowed, placeholders expanded."""
    return expand(json.dumps(value, allow_nan=True)).encode()


def deeply_nested() -> st.SearchStrategy[bytes]:
    opener = st.sampled_from((b"[", b'{"a":', b'{"status":', b'{"subscriptions":'))
    return st.builds(lambda o, n: o * n, opener, st.sampled_from((2, 900, 3000, 100_000)))


def bodies(documents: Sequence[Any], keys: Sequence[str] = ()) -> st.SearchStrategy[bytes]:
    """Reply bodies for a JSON parser: mostly mutated real documents, then anything at all."""
    docs = st.sampled_from(tuple(documents))
    real = docs.flatmap(lambda d: mutated(d, keys=keys)).map(dump_json)
    return st.one_of(
        real,
        real.flatmap(corrupted),
        docs.map(dump_json),
        json_trees(keys).map(dump_json),
        st.binary(max_size=300),
        deeply_nested(),
    )


#: HTTP statuses: mostly 200, where the parsing happens, then errors and anything else.
statuses: st.SearchStrategy[int] = st.one_of(
    st.just(200), st.just(200), st.just(200),
    st.sampled_from((404, 408, 401, 403, 500, 503)), st.integers(0, 999))
