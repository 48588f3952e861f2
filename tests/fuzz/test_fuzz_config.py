"""Fuzz the config parser: a `LoadedConfig` that keeps its promises, or a `ConfigError`.

Targets: YAML-level garbage (tokens of YAML syntax: anchors, aliases, tags, merge keys, flow and
block collections), the shipped `policies/tracardi.yaml` with wrong types, hostile values and
missing or extra keys anywhere in it, files of arbitrary bytes (`load_config`: non-UTF-8, cut
short), and alias bombs ("billion laughs"), which must stop at the node budget.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from fuzz_support import (
    REPO,
    corrupted,
    expand,
    expect,
    expect_rejected,
    fuzz_settings,
    mutated,
)
from hypothesis import assume, given
from hypothesis import strategies as st

from autoscaler import config
from autoscaler.config import (
    MAX_CONFIG_BYTES,
    MAX_YAML_NODES,
    ConfigError,
    LoadedConfig,
    load_config,
    parse_config,
)

SHIPPED = REPO / "policies" / "tracardi.yaml"
SHIPPED_TEXT = SHIPPED.read_text(encoding="utf-8")
SHIPPED_DOC = yaml.safe_load(SHIPPED_TEXT)
CONFIG_KEYS = ("workloads", "dependencies", "sources", "daemon", "kind", "url", "admin_url",
               "min", "max", "policies", "requires", "name", "source", "params", "behavior",
               "healing", "auth", "tls", "password", "token", "password_env", "lease",
               "scale_up", "scale_down", "type", "value", "period_seconds", "<<", "query")

YAML_TOKENS = (
    "a", "b", "x", ":", ": ", " ", "\n", "\n  ", "- ", "[", "]", "{", "}", ",", "&x ", "*x",
    "&y ", "*y", "!!set ", "!!binary ", "!!python/object/apply:os.system ", "!!float ",
    "!!int ", "!!str ", "!!timestamp ", "!!omap ", "!custom ", "<<: ", "? ", "'", '"', "|",
    ">", "#", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "---\n", "...\n", "workloads", "min",
    "max", "policies", "fixed", "1", "-1", ".nan", ".inf", "1e999", "1.0e+999", "0x1F", "0o17",
    "2001-12-14", "~", "null", "yes", "no", "\t", "\\", "\x00", "\ufeff", "\x85", "é",
    "&x [*x]", "&x {a: *x}", "[" * 10, "{a: " * 10, "- " * 10,
)

yaml_garbage = st.one_of(
    st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join),
    st.text(max_size=200),
)


def assert_loaded(loaded: LoadedConfig) -> None:
    assert isinstance(loaded, LoadedConfig)
    assert loaded.workloads
    for spec in loaded.workloads:
        assert 0 <= spec.settings.min <= spec.settings.max
        assert spec.policies


def parse(target: str, text: str) -> None:
    loaded = expect(target, lambda: parse_config(text, path="fuzz.yaml"), (ConfigError,))
    if loaded is not None:
        assert_loaded(loaded)


def dump_yaml(doc: Any) -> str:
    return expand(yaml.safe_dump(doc, sort_keys=False))


@given(text=yaml_garbage)
@fuzz_settings(500)
def test_yaml_garbage(text: str) -> None:
    parse("config-yaml-garbage", text)


@given(doc=mutated(SHIPPED_DOC, keys=CONFIG_KEYS).map(dump_yaml).map(str.encode)
       .flatmap(corrupted))
@fuzz_settings(250)
def test_shipped_config_mutated(doc: bytes) -> None:
    parse("config-mutated", doc.decode("utf-8", "replace"))


@given(raw=st.one_of(
    st.just(SHIPPED_TEXT.encode()).flatmap(corrupted),
    st.binary(max_size=300),
    st.sampled_from(("utf-16", "utf-32", "utf-8-sig", "latin-1")).map(
        lambda codec: SHIPPED_TEXT.replace("#", "é#").encode(codec)),
))
@fuzz_settings(200)
def test_config_file_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(raw)
        loaded = expect("config-file", lambda: load_config(path), (ConfigError,))
    if loaded is not None:
        assert_loaded(loaded)


def _bomb(width: int, depth: int, *, mapping: bool) -> str:
    """`depth` levels, each naming the level below `width` times: width**depth nodes."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth):
        if mapping:
            below = ", ".join(f"k{i}: *l{level - 1}" for i in range(width))
            lines.append(f"l{level}: &l{level} {{{below}}}")
        else:
            lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    lines.append(f"workloads: {{api: {{min: 1, max: 2, policies: [fixed], x: *l{depth - 1}}}}}")
    return "\n".join(lines) + "\n"


# A small budget makes each bomb cheap, so many shapes run; the real one is tested below.
FUZZ_NODE_BUDGET = 2_000


@given(width=st.integers(2, 12), depth=st.integers(2, 12), mapping=st.booleans())
@fuzz_settings(300)
def test_alias_bombs_stop_at_the_node_budget(width: int, depth: int, mapping: bool) -> None:
    assume(width**depth > FUZZ_NODE_BUDGET)
    text = _bomb(width, depth, mapping=mapping)
    with mock.patch.object(config, "MAX_YAML_NODES", FUZZ_NODE_BUDGET):
        error = expect_rejected("config-alias-bomb", lambda: parse_config(text), ConfigError)
    assert f"more than {FUZZ_NODE_BUDGET} YAML nodes" in str(error)


def test_billion_laughs_stops_at_the_real_node_budget() -> None:
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES} YAML nodes"):
        parse_config(_bomb(10, 9, mapping=False))


def test_shipped_config_parses() -> None:
    assert_loaded(parse_config(SHIPPED_TEXT))


@pytest.mark.parametrize("text", [
    pytest.param("a: &a [*a]\nworkloads: {}\n", id="sequence-containing-itself"),
    pytest.param("a: &a {b: *a}\nworkloads: {}\n", id="mapping-containing-itself"),
    pytest.param("workloads: &w {api: {min: 1, max: 2, policies: [fixed], x: *w}}\n",
                 id="workloads-containing-themselves"),
])
def test_recursive_aliases_are_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        parse_config(text)


@pytest.mark.parametrize("text", [
    pytest.param("workloads: " + "[" * 200 + "]" * 200, id="flow-sequences"),
    pytest.param("workloads: " + "{a: " * 200 + "1" + "}" * 200, id="flow-mappings"),
    pytest.param("[" * 100_000, id="unclosed-far-past-the-recursion-limit"),
])
def test_deep_nesting_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="nested"):
        parse_config(text)


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(SHIPPED_TEXT.encode() + b"#" * MAX_CONFIG_BYTES)
    with pytest.raises(ConfigError, match=r"over the .* limit") as raised:
        load_config(path)
    assert raised.value.issues[0].field == "(file)"
