"""Table-driven tests of `parse_config` / `load_config` and the `check` command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autoscaler.cli import main
from autoscaler.config import ConfigError, ConfigIssue, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "policies" / "tracardi.yaml"

BASE = """\
dependencies:
  es:
    kind: elasticsearch
    url: {url}
    auth: {auth}
sources:
  q: {{kind: prometheus, url: "http://prom:9090", query: up}}
workloads:
  api:
    min: {lo}
    max: {hi}
    requires: {requires}
    policies:
      - {policy}
    behavior:
      scale_down: {{stabilization_window_seconds: {window}}}
"""
DEFAULTS = {"url": '"http://es:9200"', "auth": "{username: elastic, password_env: ES_PW}",
            "lo": 1, "hi": 5, "requires": "[es]", "window": 300,
            "policy": "{name: request-rate, source: q, capacity_rps: 10}"}


def config(**overrides: object) -> str:
    return BASE.format(**{**DEFAULTS, **overrides})


FIVE_MISTAKES = """\
dependencies:
  es:
    kind: elasticsearch
    url: http://es:9200
    auth:
      username: elastic
      password: hunter2
sources:
  q:
    kind: prometheus
    url: http://prom:9090
    query: up
    poll_seconds: fast
workloads:
  api:
    min: 5
    max: 2
    requires: [es]
    colour: blue
    policies:
      - name: bogus
"""


def issues_of(text: str) -> tuple[ConfigIssue, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path="c.yaml")
    return info.value.issues


def test_shipped_config_is_valid() -> None:
    loaded = load_config(SHIPPED)
    assert {w.name for w in loaded.workloads} >= {"be-fa-public", "wk-pl-background", "wk-apm"}
    assert all(w.policies for w in loaded.workloads)


def test_base_config_is_valid() -> None:
    loaded = parse_config(config(), path="c.yaml")
    assert loaded.warnings == ()
    assert loaded.workloads[0].key == "tracardi/api"


def test_five_mistakes_give_five_issues_with_line_and_field() -> None:
    got = {(i.line, i.field) for i in issues_of(FIVE_MISTAKES)}
    assert got == {
        (7, "dependencies.es.auth.password"),
        (13, "sources.q.poll_seconds"),
        (17, "workloads.api.max"),
        (19, "workloads.api.colour"),
        (21, "workloads.api.policies.0.name"),
    }


@pytest.mark.parametrize(("field", "fragment"), [
    pytest.param("dependencies.es.auth.password", "inline secret", id="inline-password"),
    pytest.param("sources.q.poll_seconds", "number", id="wrong-type"),
    pytest.param("workloads.api.max", "must be >= min (5)", id="min-above-max"),
    pytest.param("workloads.api.colour", "unknown key", id="unknown-key"),
    pytest.param("workloads.api.policies.0.name", "unknown policy 'bogus'", id="unknown-policy"),
])
def test_five_mistakes_messages(field: str, fragment: str) -> None:
    by_field = {i.field: i for i in issues_of(FIVE_MISTAKES)}
    assert fragment in by_field[field].message
    assert by_field[field].path == "c.yaml"


@pytest.mark.parametrize(("text", "line", "field", "fragment"), [
    pytest.param(config(url='"http://elastic:pw@es:9200"'), 4, "dependencies.es.url",
                 "credentials", id="url-with-credentials"),
    pytest.param(config(url='"http://elastic@es:9200"'), 4, "dependencies.es.url",
                 "credentials", id="url-with-username"),
    pytest.param(config(url='"ftp://es"'), 4, "dependencies.es.url", "scheme",
                 id="url-bad-scheme"),
    pytest.param(config(auth="{password_env: X, password_file: /run/pw}"), 5,
                 "dependencies.es.auth", "not both", id="password-env-and-file"),
    pytest.param(config(auth="{token: abc}"), 5, "dependencies.es.auth.token", "token_env",
                 id="inline-token"),
    pytest.param(config(requires="[es, kafka]"), 12, "workloads.api.requires.1",
                 "unknown dependency 'kafka'", id="unknown-dependency"),
    pytest.param(config(policy="{name: request-rate, source: nope, capacity_rps: 10}"), 14,
                 "workloads.api.policies.0.source", "no such source", id="unknown-source"),
    pytest.param(config(
        policy="{name: backlog, source: q, msgs_per_second: 10, use_in_rate: false}"), 14,
                 "workloads.api.policies.0.source", "has no field 'backlog'",
                 id="source-lacks-field"),
    pytest.param(config(policy="{name: request-rate, source: q}"), 14,
                 "workloads.api.policies.0.capacity_rps", "required",
                 id="policy-param-missing"),
    pytest.param(config(lo=-1), 10, "workloads.api.min", "greater than or equal",
                 id="negative-min"),
    pytest.param(config(policy="{name: request-rate, source: q, capacity_rps: 1.0e+308}"), 14,
                 "workloads.api.policies.0.capacity_rps", "less than or equal to 1000000000",
                 id="capacity-beyond-any-pod"),
    pytest.param(config(policy="{name: hpa, metric: {type: External, source: q, target: "
                               "{type: AverageValue, average_value: .inf}}}"), 14,
                 "workloads.api.policies.0.metric.target.average_value",
                 "input should be a finite number", id="hpa-target-infinite"),
    # The default daemon.history_seconds keeps 900 s; a 1800 s burst window could never fill.
    pytest.param(config(
        policy="{name: request-rate, source: q, capacity_rps: 10, burst_seconds: 1800}"), 14,
                 "workloads.api.policies.0", "reads 1800 s of 'q.value' but daemon.history_seconds "
                 "keeps 900 s", id="window-beyond-history"),
    pytest.param(config(window=99999), 16,
                 "workloads.api.behavior.scale_down.stabilization_window_seconds",
                 "less than or equal", id="window-too-long"),
])
def test_single_issue(text: str, line: int, field: str, fragment: str) -> None:
    issues = issues_of(text)
    assert len(issues) == 1, issues
    assert (issues[0].line, issues[0].field) == (line, field)
    assert fragment in issues[0].message


def test_window_within_raised_history_is_valid() -> None:
    text = "daemon: {history_seconds: 1800}\n" + config(
        policy="{name: request-rate, source: q, capacity_rps: 10, burst_seconds: 1800}")
    assert parse_config(text, path="c.yaml").workloads[0].name == "api"


BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(("text", "line", "field", "fragment"), [
    pytest.param("", 1, "(root)", "empty file", id="empty"),
    pytest.param("# only a comment\n", 1, "(root)", "empty file", id="comment-only"),
    pytest.param("- a\n- b\n", 1, "(root)", "mapping", id="list-root"),
    pytest.param("just a string\n", 1, "(root)", "mapping", id="scalar-root"),
    pytest.param("workloads:\n  api: {min: 1\n", 3, "(yaml)", "expected", id="yaml-syntax"),
    pytest.param("a: [1, 2\nb: 3\n", 2, "(yaml)", "expected", id="yaml-unclosed-list"),
    pytest.param(BOMB, None, None, "YAML nodes", id="alias-bomb"),
])
def test_unusable_file_gives_clear_error(text: str, line: int | None, field: str | None,
                                        fragment: str) -> None:
    issues = issues_of(text)  # the alias bomb is refused by its node count, never expanded
    assert len(issues) == 1
    if line is not None:
        assert issues[0].line == line
    if field is not None:
        assert issues[0].field == field
    assert fragment in issues[0].message


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(config(lo=5, hi=5), ["workloads.api.max: min == max"], id="min-equals-max"),
    pytest.param(config(window=0), ["workloads.api.behavior.scale_down: scale-down "
                                    "stabilization window of 0"], id="window-zero"),
    pytest.param(config(requires="[]"), ["workloads.api.requires: requires no dependency"],
                 id="no-requires"),
    pytest.param(config(lo=2, hi=2, window=0, policy="{name: fixed}"), [],
                 id="fixed-policy-no-scaling-warnings"),
    pytest.param(config(lo=3, hi=3, requires="[]", window=0),
                 ["workloads.api.max: min == max", "stabilization window of 0",
                  "requires no dependency"], id="all-three"),
    pytest.param(config(window="300, retract_slack: 2"),
                 ["workloads.api.behavior.scale_down.retract_slack: retract_slack without "
                  "retract_seconds does nothing"], id="slack-without-retracting"),
    pytest.param(config(window="300, retract_seconds: 30, retract_slack: 2"), [],
                 id="slack-with-retracting"),
    pytest.param("workloads: {}\n", ["workloads: no workload: the daemon would manage nothing"],
                 id="no-workload"),
])
def test_warnings(text: str, expected: list[str]) -> None:
    warnings = parse_config(text, path="c.yaml").warnings
    assert len(warnings) == len(expected), warnings
    for w, fragment in zip(warnings, expected, strict=True):
        assert re.match(r"^c\.yaml:\d+: warning: ", w), w
        assert fragment in w


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert info.value.issues[0].field == "(file)"


ISSUE_LINE = re.compile(r"^(?P<file>.+\.yaml):(?P<line>\d+): (?P<field>[^:\s]+): (?P<msg>.+)$")


@pytest.mark.parametrize(("text", "code", "issues"), [
    pytest.param(config(), 0, 0, id="valid"),
    pytest.param(FIVE_MISTAKES, 1, 5, id="five-mistakes"),
    pytest.param("", 1, 1, id="empty"),
])
def test_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: int,
                   issues: int) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == code
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ISSUE_LINE.match(ln)]
    assert len(lines) == issues, err
    for ln in lines:
        m = ISSUE_LINE.match(ln)
        assert m is not None and m["file"] == str(path)
    if code == 0:
        assert f"{path}: ok, 1 workload(s)" in out
    else:
        assert f"{path}: {issues} error(s)" in err


def test_check_cli_five_mistakes_lines(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(FIVE_MISTAKES)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:7: dependencies.es.auth.password: inline secret" in err
    assert f"{path}:21: workloads.api.policies.0.name: unknown policy 'bogus'" in err


def test_check_cli_shipped_and_bad_together(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    assert main(["check", str(SHIPPED), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert f"{SHIPPED}: ok" in out
    assert f"{bad}:1: (root): expected a mapping at the top level" in err


@pytest.mark.parametrize(("key", "use"), [
    ("api_key", "token_env"), ("Secret", "token_env"), ("Password", "password_env"),
    ("passwd", "password_env"),
])
def test_an_inline_secret_points_to_a_setting_that_exists(key: str, use: str) -> None:
    text = ("dependencies:\n  es:\n    kind: elasticsearch\n    url: http://es:9200\n"
            f"    auth: {{{key}: abc}}\n"
            "workloads:\n  w: {min: 1, max: 2, requires: [es], policies: [{name: fixed}]}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    message = "\n".join(str(i) for i in info.value.issues)
    assert f"use {use} (an environment variable)" in message
    # and the setting it names is one the config takes
    ref = use.removesuffix("_env")
    parse_config(text.replace(f"{key}: abc", f"{ref}_env: ES_SECRET"))


def test_a_workload_outside_the_daemons_namespace_is_warned_of_its_rbac() -> None:
    text = config().replace("workloads:\n  api:\n", "workloads:\n  api:\n    namespace: other\n")
    assert "namespace: other" in text
    [warning] = parse_config(text, path="c.yaml").warnings
    assert re.match(r"^c\.yaml:\d+: warning: workloads\.api\.namespace: namespace 'other' "
                    r"is not daemon\.namespace \('tracardi'\): the Role in deploy/ grants",
                    warning), warning


@pytest.mark.parametrize(("line", "field", "message"), [
    pytest.param("    min: true\n", "workloads.api.min", "input should be a valid integer",
                 id="bool-count"),
    pytest.param('    min: "2"\n', "workloads.api.min", "input should be a valid integer",
                 id="quoted-count"),
    pytest.param('    max: "9"\n', "workloads.api.max", "input should be a valid integer",
                 id="quoted-max"),
])
def test_a_number_written_as_text_or_a_boolean_is_refused(line: str, field: str,
                                                           message: str) -> None:
    key = line.split(":", maxsplit=1)[0].strip()
    text = re.sub(rf"^    {key}: .*\n", line, config(), count=1, flags=re.M)
    assert line in text
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert any(i.field == field and message in i.message for i in info.value.issues), \
        info.value.issues


def test_a_policy_rate_written_as_text_is_refused() -> None:
    text = config().replace("capacity_rps: 10}", 'capacity_rps: "10"}')
    assert 'capacity_rps: "10"' in text
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert any(i.field.endswith("capacity_rps") and "input should be a valid number" in i.message
               for i in info.value.issues), info.value.issues


@pytest.mark.parametrize(("old", "new", "field"), [
    pytest.param("query: up}", "query: up, poll_seconds: 0.0001}", "sources.q.poll_seconds",
                 id="poll"),
    pytest.param("password_env: ES_PW}", "password_env: ES_PW}\n    period_seconds: 0.01",
                 "dependencies.es.period_seconds", id="probe-period"),
    pytest.param("workloads:", "daemon: {tick_seconds: 0.001}\nworkloads:",
                 "daemon.tick_seconds", id="tick"),
])
def test_an_interval_under_a_tenth_of_a_second_is_refused(old: str, new: str, field: str) -> None:
    text = config().replace(old, new, 1)
    assert new in text
    [issue] = issues_of(text)
    assert (issue.field, issue.message) == (field,
                                            "input should be greater than or equal to 0.1")


def test_a_poll_or_period_under_a_second_is_warned_of() -> None:
    text = config().replace("query: up}", "query: up, poll_seconds: 0.5}").replace(
        "password_env: ES_PW}", "password_env: ES_PW}\n    period_seconds: 0.25")
    assert parse_config(text, path="c.yaml").warnings == (
        "c.yaml:6: warning: dependencies.es.period_seconds: checked every 0.25 s, 240 times a "
        "minute: 1 s or more is usual",
        "c.yaml:8: warning: sources.q.poll_seconds: read every 0.5 s, 120 times a minute: "
        "1 s or more is usual")


def test_a_staleness_under_one_read_is_refused() -> None:
    def with_timing(timing: str) -> str:
        return config().replace("query: up}", f"query: up, {timing}}}")

    [issue] = issues_of(with_timing("poll_seconds: 60, stale_seconds: 30"))
    assert (issue.line, issue.field) == (7, "sources.q.stale_seconds")
    assert issue.message == ("30 is under poll_seconds + timeout_seconds (62 s): every read "
                             "would go stale before the next, and the workloads on it would "
                             "never scale")
    loaded = parse_config(with_timing("poll_seconds: 60, timeout_seconds: 5, stale_seconds: 65"))
    assert loaded.config.sources["q"].staleness_limit() == 65
