"""YAML configuration -> validated, frozen models; every error names file, line and field.

`load_config` is the single entry point: it parses YAML while remembering the line of every key,
validates the shape with pydantic (unknown keys rejected, secrets never inline), then checks what
pydantic cannot see: min <= max, policies that exist and accept their parameters, references to
dependencies and sources that exist. Risky but legal settings come back as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from autoscaler.model import CPU_SIGNAL
from autoscaler.policies.base import (
    LooksBack,
    Policy,
    UnknownPolicyError,
    build_policy,
    optional_signals,
)

MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_NODES = 50_000
#: A valid config nests about 8 levels deep; the limit keeps hostile nesting, also through
#: aliases, away from the recursive parts (PyYAML's composer, the walk below, pydantic).
MAX_YAML_DEPTH = 32
#: The shortest poll, probe period, tick or lease retry: each one is a request or a wake-up, and
#: below this a typo (`0.0001` for `1`) would hammer the system polled. `check` warns below 1 s.
MIN_INTERVAL = 0.1
#: Polls and probe periods under this many seconds get a warning from `check`.
BRISK_INTERVAL = 1.0
SECRET_KEYS = frozenset(
    {"password", "token", "api_key", "apikey", "secret", "passwd", "auth_token"})
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
PAUSE_ANNOTATION = "autoscaler.tracardi.com/paused"


class Frozen(BaseModel):
    # No setting means infinity: `.inf` as a limit or a rate switches a rule off unseen.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _check_url(value: str) -> str:
    # urlsplit silently drops tabs and newlines; refuse them (and any other control or blank
    # character) so the URL used is the URL checked.
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain whitespace or control characters")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https", "redis", "rediss"}:
        raise ValueError(f"must be an http(s) URL (redis(s) for Redis), got "
                         f"{'no scheme' if not parts.scheme else f'scheme {parts.scheme!r}'}")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.password is not None or parts.username is not None:
        raise ValueError("must not carry credentials; use the *_env or *_file settings")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string or fragment")
    return value.rstrip("/")


Url = Annotated[str, Field(min_length=1)]


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_env_name(value: str | None) -> str | None:
    # A secret pasted where its variable's name belongs would be echoed by "variable X is not
    # set"; real tokens and passwords rarely look like a shell identifier, so refuse them here
    # without repeating the value.
    if value is not None and not ENV_NAME_RE.fullmatch(value):
        raise ValueError("must be an environment variable name (letters, digits and _, not "
                         "starting with a digit); put the secret itself in that variable")
    return value


class SecretRefs(Frozen):
    """Credentials are referenced, never inline: each secret is `<name>_env` or `<name>_file`."""

    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    token_env: str | None = None
    token_file: Path | None = None

    _env_names = field_validator("password_env", "token_env")(_check_env_name)

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> SecretRefs:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if self.token_env and self.token_file:
            raise ValueError("give token_env or token_file, not both")
        return self


class TlsSettings(Frozen):
    verify: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class ProbeTiming(Frozen):
    period_seconds: float = Field(5.0, strict=True, ge=MIN_INTERVAL, le=3600)
    timeout_seconds: float = Field(2.0, strict=True, gt=0, le=60)
    failure_threshold: int = Field(3, strict=True, ge=1, le=100)
    success_threshold: int = Field(2, strict=True, ge=1, le=100)


class ElasticsearchDependency(ProbeTiming):
    kind: Literal["elasticsearch"]
    url: Url
    yellow_is_up: bool = True
    auth: SecretRefs = SecretRefs()
    tls: TlsSettings = TlsSettings()

    _url = field_validator("url")(_check_url)


class MysqlDependency(ProbeTiming):
    kind: Literal["mysql"]
    host: str = Field(min_length=1)
    port: int = Field(3306, strict=True, ge=1, le=65535)
    database: str | None = None
    auth: SecretRefs = SecretRefs()


class RedisDependency(ProbeTiming):
    kind: Literal["redis"]
    url: Url
    auth: SecretRefs = SecretRefs()
    tls: TlsSettings = TlsSettings()

    _url = field_validator("url")(_check_url)


class PulsarDependency(ProbeTiming):
    kind: Literal["pulsar"]
    admin_url: Url
    auth: SecretRefs = SecretRefs()
    tls: TlsSettings = TlsSettings()

    _url = field_validator("admin_url")(_check_url)


class HttpDependency(ProbeTiming):
    kind: Literal["http"]
    url: Url
    expect_status: int = Field(200, strict=True, ge=100, le=599)
    auth: SecretRefs = SecretRefs()
    tls: TlsSettings = TlsSettings()

    _url = field_validator("url")(_check_url)


Dependency = Annotated[
    ElasticsearchDependency | MysqlDependency | RedisDependency | PulsarDependency | HttpDependency,
    Field(discriminator="kind"),
]

TOPIC_PART_RE = re.compile(r"^[A-Za-z0-9_.=-]+$")


def _check_topic_part(value: str) -> str:
    """A name that becomes one URL path segment: it must not add, remove or split segments."""
    if not TOPIC_PART_RE.fullmatch(value):
        raise ValueError("may hold only letters, digits and _ . = -")
    if not value.strip("."):
        raise ValueError("must not be '.' or '..' (it is a URL path segment)")
    return value


class SourceTiming(Frozen):
    poll_seconds: float = Field(strict=True, ge=MIN_INTERVAL, le=3600)
    timeout_seconds: float = Field(2.0, strict=True, gt=0, le=60)
    stale_seconds: float | None = Field(None, strict=True, gt=0)  # after both: checked on them

    def staleness_limit(self) -> float:
        """A signal older than this is stale: by default three missed polls plus a timeout."""
        return self.stale_seconds or 3 * self.poll_seconds + self.timeout_seconds

    @field_validator("stale_seconds")
    @classmethod
    def _stale_after_a_read(cls, stale: float | None, info: ValidationInfo) -> float | None:
        # Shorter, and a read goes stale before the next one lands: the workloads on it
        # would be frozen for good, with every read a good one.
        poll, timeout = info.data.get("poll_seconds"), info.data.get("timeout_seconds")
        if stale is None or poll is None or timeout is None:
            return stale
        if stale < poll + timeout:
            raise ValueError(f"{stale:g} is under poll_seconds + timeout_seconds "
                             f"({poll + timeout:g} s): every read would go stale before the "
                             "next, and the workloads on it would never scale")
        return stale


class PulsarSource(SourceTiming):
    kind: Literal["pulsar"]
    admin_url: Url
    tenant: str
    namespace: str
    topic: str
    subscription: str
    partitioned: bool = True
    poll_seconds: float = Field(2.0, strict=True, ge=MIN_INTERVAL, le=3600)
    rate_seconds: float = Field(10.0, strict=True, gt=0, le=600,
                                description="in_rate and out_rate: msgInCounter's and "
                                            "msgOutCounter's increase over this long")
    auth: SecretRefs = SecretRefs()
    tls: TlsSettings = TlsSettings()

    _url = field_validator("admin_url")(_check_url)
    _parts = field_validator("tenant", "namespace", "topic", "subscription")(_check_topic_part)


class PrometheusSource(SourceTiming):
    kind: Literal["prometheus"]
    url: Url
    query: str = Field(min_length=1, max_length=4000)
    poll_seconds: float = Field(5.0, strict=True, ge=MIN_INTERVAL, le=3600)
    auth: SecretRefs = SecretRefs()
    tls: TlsSettings = TlsSettings()

    _url = field_validator("url")(_check_url)


class TracardiQueueSource(SourceTiming):
    """Tracardi's own `GET /queue/{namespace}/{topic}/backlog` (commercial API)."""

    kind: Literal["tracardi-queue"]
    api_url: Url
    namespace: str
    topic: str
    subscription: str | None = None
    poll_seconds: float = Field(2.0, strict=True, ge=MIN_INTERVAL, le=3600)
    auth: SecretRefs = SecretRefs()
    tls: TlsSettings = TlsSettings()

    _url = field_validator("api_url")(_check_url)
    _parts = field_validator("namespace", "topic")(_check_topic_part)


Source = Annotated[
    PulsarSource | PrometheusSource | TracardiQueueSource, Field(discriminator="kind")
]

#: The signal fields each source kind produces, as `<source>.<field>`.
SOURCE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "pulsar": ("backlog", "in_rate", "out_rate", "consumers"),
    "prometheus": ("value",),
    "tracardi-queue": ("backlog",),
}
#: Per-workload signals read through the Kubernetes API (metrics.k8s.io).
RESOURCE_SIGNALS = (CPU_SIGNAL,)


class RatePolicy(Frozen):
    type: Literal["Pods", "Percent"]
    value: int = Field(strict=True, gt=0)
    period_seconds: int = Field(strict=True, gt=0, le=1800)


#: `scale_down.retract_slack`'s default: a count one pod above the recommendation is left to the
#: scale-down window.
RETRACT_SLACK = 1


class ScalingRules(Frozen):
    stabilization_window_seconds: int = Field(strict=True, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: tuple[RatePolicy, ...]
    #: Not the HPA's (scale-down only; 0, the default, is off): the pods added in the last this
    #: many seconds that are still starting (not ready, or running no consumer of
    #: `healing.consumer_source`) go at once when no longer recommended, past the window and the
    #: rate limits. They have served nothing, so nothing is lost.
    retract_seconds: int = Field(0, strict=True, ge=0, le=1800)
    #: A count at most this many pods above the recommendation is left to the window, not
    #: retracted: on a noisy rate one read in a few crosses a pod's boundary, and retracting each
    #: would start and stop a pod every few seconds. More slack: fewer scale actions, more pods.
    retract_slack: int = Field(RETRACT_SLACK, strict=True, ge=0, le=1000)


def default_scale_up() -> ScalingRules:
    return ScalingRules(
        stabilization_window_seconds=0,
        select_policy="Max",
        policies=(
            RatePolicy(type="Pods", value=4, period_seconds=15),
            RatePolicy(type="Percent", value=100, period_seconds=15),
        ),
    )


def default_scale_down() -> ScalingRules:
    return ScalingRules(
        stabilization_window_seconds=300,
        select_policy="Max",
        policies=(RatePolicy(type="Percent", value=100, period_seconds=15),),
    )


class PartialRules(Frozen):
    """Rules as written by the operator; unset fields take the HPA defaults of their direction."""

    stabilization_window_seconds: int | None = Field(None, strict=True, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: tuple[RatePolicy, ...] | None = None
    retract_seconds: int = Field(0, strict=True, ge=0, le=1800,
                                 description="scale_down only: pods added this recently and "
                                             "not ready yet go at once when not recommended")
    retract_slack: int | None = Field(None, strict=True, ge=0, le=1000,
                                      description="scale_down only: a count at most this many "
                                                  "pods over the recommendation is not "
                                                  f"retracted (default {RETRACT_SLACK})")

    def complete(self, default: ScalingRules) -> ScalingRules:
        return ScalingRules(
            stabilization_window_seconds=(
                default.stabilization_window_seconds
                if self.stabilization_window_seconds is None
                else self.stabilization_window_seconds
            ),
            select_policy=self.select_policy or default.select_policy,
            policies=default.policies if self.policies is None else self.policies,
            retract_seconds=self.retract_seconds,
            retract_slack=RETRACT_SLACK if self.retract_slack is None else self.retract_slack,
        )


class Tolerance(Frozen):
    scale_up: float = Field(0.1, strict=True, ge=0, le=10)
    scale_down: float = Field(0.1, strict=True, ge=0, lt=1)


class Behavior(Frozen):
    """HPA autoscaling/v2 behavior; anything left out takes the HPA default."""

    tolerance: Tolerance = Tolerance()
    scale_up: PartialRules = PartialRules()
    scale_down: PartialRules = PartialRules()

    @model_validator(mode="after")
    def _retract_on_scale_down(self) -> Behavior:
        if self.scale_up.retract_seconds or self.scale_up.retract_slack is not None:
            raise ValueError("scale_up.retract_seconds, scale_up.retract_slack: retracting is a "
                             "scale-down; set them under scale_down")
        return self

    # Computed once: every evaluation of every workload reads them.
    @cached_property
    def up(self) -> ScalingRules:
        return self.scale_up.complete(default_scale_up())

    @cached_property
    def down(self) -> ScalingRules:
        return self.scale_down.complete(default_scale_down())


#: RFC 3986 path characters without '%': a percent-escape ("%2F") could smuggle a separator.
PROBE_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")
#: Kubernetes object names (DNS-1123 subdomain) and namespaces (DNS-1123 label): both reach
#: API URL paths.
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _check_probe_path(value: str) -> str:
    if not PROBE_PATH_RE.fullmatch(value):
        raise ValueError("must start with / and hold only letters, digits and - . _ ~ ! $ & ' "
                         "( ) * + , ; = : @ / (no query, fragment, %-escape or whitespace)")
    if any(segment in (".", "..") for segment in value.split("/")):
        raise ValueError("must not contain '.' or '..' segments")
    return value


def _check_object_name(value: str | None) -> str | None:
    if value is not None and not NAME_RE.fullmatch(value):
        raise ValueError("must be a DNS-1123 name (lower case letters, digits, '-' and '.')")
    return value


def _check_namespace(value: str | None) -> str | None:
    if value is not None and not NAMESPACE_RE.fullmatch(value):
        raise ValueError("must be a Kubernetes namespace name (lower case letters, digits and "
                         "'-', at most 63)")
    return value


class HttpProbeSettings(Frozen):
    path: str = "/healthcheck"
    port: int = Field(80, strict=True, ge=1, le=65535)
    timeout_seconds: float = Field(1.0, strict=True, gt=0, le=60)
    period_seconds: float = Field(10.0, strict=True, ge=MIN_INTERVAL, le=3600)
    failure_threshold: int = Field(3, strict=True, ge=1, le=100)

    _path = field_validator("path")(_check_probe_path)


class Healing(Frozen):
    enabled: bool = True
    startup_grace_seconds: float = Field(60.0, strict=True, ge=0)
    not_ready_seconds: float = Field(120.0, strict=True, gt=0)
    crashloop_restarts: int = Field(3, strict=True, ge=1)
    http_probe: HttpProbeSettings | None = None
    #: A stuck consumer: every consumer of the pod (matched by IP in `consumer_source`'s stats)
    #: drains 0 msg/s while the backlog is above 0, in `stuck_consumer_reads` reads that saw
    #: other consumers drain, and for `stuck_consumer_seconds` since the first of them. Reads
    #: in which nobody drains count nothing but keep the clock; a read in which the pod drains,
    #: the backlog is 0, or the read fails starts over. With a 2 s poll a stuck consumer is
    #: restarted about 23 s after the first message it does not acknowledge, within the HTTP
    #: probe's 10 s * 3 (see engine/healing.py).
    stuck_consumer_seconds: float = Field(20.0, strict=True, gt=0)
    stuck_consumer_reads: int = Field(3, strict=True, ge=1)
    consumer_source: str | None = None
    min_available: int = Field(1, strict=True, ge=0)
    max_restarts: int = Field(3, strict=True, ge=1)
    window_seconds: float = Field(600.0, strict=True, gt=0)
    backoff_seconds: float = Field(30.0, strict=True, ge=0)
    allow_delete: bool = False
    breaker_threshold: int = Field(3, strict=True, ge=1)
    breaker_reset_seconds: float = Field(1800.0, strict=True, gt=0)


class PolicyRef(Frozen):
    """`{name: backlog, source: functions, drain_seconds: 60}`: a policy name plus its params."""

    name: str
    params: Mapping[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data, "params": {}}
        if isinstance(data, Mapping) and "params" not in data:
            rest = {k: v for k, v in data.items() if k != "name"}
            return {"name": data.get("name"), "params": rest}
        return data


class Workload(Frozen):
    namespace: str | None = None
    deployment: str | None = None
    min: int = Field(strict=True, ge=0, le=10_000)
    max: int = Field(strict=True, ge=1, le=10_000)
    requires: tuple[str, ...] = ()
    policies: tuple[PolicyRef, ...] = Field(min_length=1)
    behavior: Behavior = Behavior()
    healing: Healing = Healing()

    _namespace = field_validator("namespace")(_check_namespace)
    _deployment = field_validator("deployment")(_check_object_name)


class LeaseSettings(Frozen):
    name: str = "tracardi-autoscaler"
    namespace: str | None = None
    duration_seconds: float = Field(15.0, strict=True, gt=0)
    renew_deadline_seconds: float = Field(10.0, strict=True, gt=0)
    retry_period_seconds: float = Field(2.0, strict=True, ge=MIN_INTERVAL)

    _name = field_validator("name")(_check_object_name)
    _namespace = field_validator("namespace")(_check_namespace)

    @model_validator(mode="after")
    def _deadline_before_expiry(self) -> LeaseSettings:
        if self.renew_deadline_seconds >= self.duration_seconds:
            raise ValueError("renew_deadline_seconds must be < duration_seconds")
        if self.retry_period_seconds >= self.renew_deadline_seconds:
            raise ValueError("retry_period_seconds must be < renew_deadline_seconds")
        return self


class DaemonSettings(Frozen):
    namespace: str = "tracardi"
    tick_seconds: float = Field(15.0, strict=True, ge=MIN_INTERVAL, le=3600)
    debounce_seconds: float = Field(0.1, strict=True, ge=0, le=10)
    history_seconds: float = Field(900.0, strict=True, gt=0, le=86_400)
    metrics_port: int = Field(9108, strict=True, ge=0, le=65535)
    lease: LeaseSettings = LeaseSettings()

    _namespace = field_validator("namespace")(_check_namespace)


class Config(Frozen):
    daemon: DaemonSettings = DaemonSettings()
    dependencies: Mapping[str, Dependency] = Field(default_factory=dict)
    sources: Mapping[str, Source] = Field(default_factory=dict)
    workloads: Mapping[str, Workload]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """A workload ready for the engine: its settings plus its bound policies."""

    name: str
    namespace: str
    deployment: str
    settings: Workload
    policies: tuple[Policy, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def signal_names(self) -> tuple[str, ...]:
        """Every signal the policies read, those they can do without included."""
        return tuple(dict.fromkeys(s for p in self.policies
                                   for s in (*p.signals(), *optional_signals(p))))


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    path: str
    config: Config
    workloads: tuple[WorkloadSpec, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class ConfigError(ValueError):
    """The file cannot be used; `issues` says every reason, each with file, line and field."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = tuple(issues)


Loc = tuple[str | int, ...]


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that stops composing at MAX_YAML_DEPTH levels or MAX_YAML_NODES nodes.

    PyYAML composes recursively and its scanner is quadratic in flow nesting depth, so deep
    nesting would otherwise cost seconds and end in a RecursionError; and composing a 1 MiB
    list of a quarter million items takes seconds before any budget could refuse it. The
    scanner is lazy, so stopping here stops reading the file.
    """

    depth = 0
    nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        mark = parent.start_mark if parent else None
        if self.depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None,
                                              f"nested more than {MAX_YAML_DEPTH} levels deep",
                                              mark)
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(None, None,
                                              f"more than {MAX_YAML_NODES} YAML nodes", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _compose(text: str, path: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML and remember the line of every key and list item (1-based)."""
    try:
        root = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(path, line, "(yaml)", str(problem))]) from exc
    lines: dict[Loc, int] = {}
    budget = [MAX_YAML_NODES]
    active: set[int] = set()  # the collections being walked: an alias to one is a cycle

    def walk(node: yaml.Node, loc: Loc) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(
                [ConfigIssue(path, node.start_mark.line + 1, ".".join(map(str, loc)) or "(root)",
                             f"more than {MAX_YAML_NODES} YAML nodes (alias expansion?)")]
            )
        lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.CollectionNode):
            if id(node) in active:
                raise ConfigError([ConfigIssue(path, node.start_mark.line + 1, _dotted(loc),
                                               "refers to itself (recursive alias)")])
            if len(loc) >= MAX_YAML_DEPTH:
                raise ConfigError([ConfigIssue(path, node.start_mark.line + 1, _dotted(loc),
                                               f"nested more than {MAX_YAML_DEPTH} levels deep")])
            active.add(id(node))
            try:
                return walk_collection(node, loc)
            finally:
                active.discard(id(node))
        return _scalar(node, path)

    def walk_collection(node: yaml.CollectionNode, loc: Loc) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or key_node.value == "<<":
                    raise ConfigError([ConfigIssue(path, key_node.start_mark.line + 1,
                                                   ".".join(map(str, loc)) or "(root)",
                                                   "YAML merge keys (<<) are not supported")])
                where = _dotted(loc)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError([ConfigIssue(path, key_node.start_mark.line + 1, where,
                                                   "keys must be strings or integers")])
                key = _scalar(key_node, path)
                if not isinstance(key, str | int):
                    raise ConfigError([ConfigIssue(path, key_node.start_mark.line + 1, where,
                                                   "keys must be strings or integers")])
                if key in out:
                    raise ConfigError([ConfigIssue(path, key_node.start_mark.line + 1,
                                                   _dotted((*loc, key)), "duplicate key")])
                lines[(*loc, key)] = key_node.start_mark.line + 1
                out[key] = walk(value_node, (*loc, key))
            return out
        return [walk(item, (*loc, i)) for i, item in enumerate(node.value)]

    if root is None:
        return None, lines
    return walk(root, ()), lines


def _scalar(node: yaml.Node, path: str) -> Any:
    # A bare constructor, not a whole SafeLoader: building a loader's reader and scanner per
    # scalar was most of the cost of a file near the node budget.
    constructor = yaml.constructor.SafeConstructor()
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(path, node.start_mark.line + 1, "(yaml)",
                                       str(problem))]) from exc
    except (AttributeError, IndexError, OverflowError) as exc:
        # PyYAML's own constructors fail like this on some tagged scalars (`!!int ""`,
        # `!!timestamp ""`): name the value instead of the internal error.
        raise ConfigError([ConfigIssue(path, node.start_mark.line + 1, "(yaml)",
                                       f"{node.value!r:.40} is not a valid {node.tag}")]) from exc


def _field_path(data: Any, loc: Loc) -> Loc:
    """Map pydantic's loc onto the YAML path.

    Segments not found in the data are union tags (dropped) unless they are the last segment,
    which then names a missing key.
    """
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        in_map = isinstance(cur, Mapping) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_map or in_list:
            cur = cur[part]
            out.append(part)
        elif i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _line_for(lines: Mapping[Loc, int], loc: Loc) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _message(err: Mapping[str, Any], loc: Loc) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        if key.lower() in SECRET_KEYS:
            # the settings that exist: a password, or a token for any other kind of secret
            ref = "password" if key.lower() in ("password", "passwd") else "token"
            return (f"inline secret is not allowed; use {ref}_env (an environment variable) "
                    f"or {ref}_file (a mounted file)")
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        return f"unknown kind; expected one of {expected}"
    if kind == "union_tag_not_found":
        return "missing 'kind'"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def load_config(path: str | Path) -> LoadedConfig:
    """Read, validate and bind a config file; raises `ConfigError` listing every problem."""
    p = Path(path)
    shown = str(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue(shown, 0, "(file)", exc.strerror or str(exc))]) from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([ConfigIssue(shown, 0, "(file)",
                                       f"{len(raw)} bytes is over the {MAX_CONFIG_BYTES} limit")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(shown, 0, "(file)", "not UTF-8 text")]) from exc
    return parse_config(text, path=shown)


def parse_config(text: str, *, path: str = "<config>") -> LoadedConfig:
    data, lines = _compose(text, path)
    if data is None:
        raise ConfigError([ConfigIssue(path, 1, "(root)", "empty file; expected a mapping with "
                                                          "at least 'workloads'")])
    if not isinstance(data, Mapping):
        raise ConfigError([ConfigIssue(path, 1, "(root)", "expected a mapping at the top level")])
    report = _Report(path, lines)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        report.add_validation(exc, data=data)
        _check_raw_workloads(data, report)
        raise ConfigError(report.sorted()) from None
    specs = _bind(config, report)
    if report.issues:
        raise ConfigError(report.sorted())
    return LoadedConfig(path=path, config=config, workloads=specs,
                        warnings=tuple(_warnings(config, lines, path)))


@dataclass
class _Report:
    """Collects issues for one file, each placed on the line of the key it names."""

    path: str
    lines: Mapping[Loc, int]
    issues: list[ConfigIssue] = field(default_factory=list)

    def add(self, loc: Loc, message: str) -> None:
        self.issues.append(ConfigIssue(self.path, _line_for(self.lines, loc), _dotted(loc),
                                       message))

    def add_validation(self, exc: ValidationError, *, data: Any = None,
                       prefix: Loc = ()) -> None:
        for err in exc.errors():
            raw = tuple(err["loc"])
            loc = (*prefix, *(_field_path(data, raw) if data is not None else raw))
            self.add(loc, _message(err, loc))

    def check_range(self, base: Loc, lo: int, hi: int) -> None:
        if lo > hi:
            self.add((*base, "max"), f"must be >= min ({lo})")

    def policy(self, ref: PolicyRef, loc: Loc) -> Policy | None:
        """Bind a policy to its params, or report why it cannot be."""
        try:
            return build_policy(ref.name, ref.params)
        except UnknownPolicyError as exc:
            self.add((*loc, "name"), str(exc))
        except ValidationError as exc:
            self.add_validation(exc, data=ref.params, prefix=loc)
        return None

    def sorted(self) -> list[ConfigIssue]:
        return sorted(dict.fromkeys(self.issues), key=lambda i: (i.line, i.field))


def _check_raw_workloads(data: Mapping[str, Any], report: _Report) -> None:
    """When the shape is wrong somewhere, still report min > max and bad policies elsewhere."""
    workloads = data.get("workloads")
    if not isinstance(workloads, Mapping):
        return
    for name, w in workloads.items():
        if not isinstance(w, Mapping):
            continue
        base: Loc = ("workloads", name)
        lo, hi = w.get("min"), w.get("max")
        if isinstance(lo, int) and isinstance(hi, int):
            report.check_range(base, lo, hi)
        pols = w.get("policies")
        for i, raw in enumerate(pols if isinstance(pols, list) else ()):
            try:
                ref = PolicyRef.model_validate(raw)
            except ValidationError:
                continue  # already reported by the shape check
            report.policy(ref, (*base, "policies", i))


def _bind(config: Config, report: _Report) -> tuple[WorkloadSpec, ...]:
    available = {f"{name}.{f}" for name, s in config.sources.items()
                 for f in SOURCE_FIELDS[s.kind]} | set(RESOURCE_SIGNALS)
    specs: list[WorkloadSpec] = []
    seen_targets: dict[tuple[str, str], str] = {}
    add = report.add
    for name, w in config.workloads.items():
        base: Loc = ("workloads", name)
        if not NAME_RE.fullmatch(name):
            add(base, "must be a DNS-1123 name (lower case letters, digits, '-' and '.')")
        report.check_range(base, w.min, w.max)
        for i, dep in enumerate(w.requires):
            if dep not in config.dependencies:
                known = ", ".join(sorted(config.dependencies)) or "none defined"
                add((*base, "requires", i), f"unknown dependency {dep!r}; defined: {known}")
        if w.healing.consumer_source and w.healing.consumer_source not in config.sources:
            add((*base, "healing", "consumer_source"),
                f"unknown source {w.healing.consumer_source!r}")
        namespace = w.namespace or config.daemon.namespace
        deployment = w.deployment or name
        target = (namespace, deployment)
        if target in seen_targets:
            add(base, f"targets {namespace}/{deployment}, already managed by workload "
                      f"{seen_targets[target]!r}")
        seen_targets[target] = name
        policies: list[Policy] = []
        for i, ref in enumerate(w.policies):
            loc: Loc = (*base, "policies", i)
            policy = report.policy(ref, loc)
            if policy is None:
                continue
            for signal in policy.signals():
                if signal not in available:
                    src = signal.split(".", 1)[0]
                    hint = ("no such source" if src not in config.sources
                            else f"source {src!r} has no field {signal.split('.', 1)[1]!r}")
                    add((*loc, "source"), f"signal {signal!r}: {hint}")
            if isinstance(policy, LooksBack):
                kept = config.daemon.history_seconds
                for signal, seconds in policy.history_seconds().items():
                    if seconds > kept:
                        add(loc, f"reads {seconds:g} s of {signal!r} but daemon.history_seconds "
                                 f"keeps {kept:g} s: raise it or shorten this policy's windows")
            policies.append(policy)
        specs.append(WorkloadSpec(name=name, namespace=namespace, deployment=deployment,
                                  settings=w, policies=tuple(policies)))
    return tuple(specs)


def _warnings(config: Config, lines: Mapping[Loc, int], path: str) -> list[str]:
    out: list[str] = []

    def warn(loc: Loc, message: str) -> None:
        out.append(f"{path}:{_line_for(lines, loc)}: warning: {_dotted(loc)}: {message}")

    def brisk(loc: Loc, seconds: float, what: str) -> None:
        if seconds < BRISK_INTERVAL:
            warn(loc, f"{what} every {seconds:g} s, {60 / seconds:.0f} times a minute: "
                      f"{BRISK_INTERVAL:g} s or more is usual")

    for name, dep in config.dependencies.items():
        brisk(("dependencies", name, "period_seconds"), dep.period_seconds, "checked")
    for name, src in config.sources.items():
        brisk(("sources", name, "poll_seconds"), src.poll_seconds, "read")
    if not config.workloads:
        warn(("workloads",), "no workload: the daemon would manage nothing")
    for name, w in config.workloads.items():
        base: Loc = ("workloads", name)
        probe = w.healing.http_probe
        if probe is not None:
            brisk((*base, "healing", "http_probe", "period_seconds"), probe.period_seconds,
                  "each pod probed")
        scaling = any(p.name != "fixed" for p in w.policies)
        if scaling and w.min == w.max:
            warn((*base, "max"), "min == max on a workload with a scaling policy: it never scales")
        if scaling and w.behavior.down.stabilization_window_seconds == 0:
            warn((*base, "behavior", "scale_down"),
                 "scale-down stabilization window of 0: replicas may flap on noisy signals")
        down = w.behavior.scale_down
        if down.retract_slack is not None and not down.retract_seconds:
            warn((*base, "behavior", "scale_down", "retract_slack"),
                 "retract_slack without retract_seconds does nothing: nothing is retracted")
        if not w.requires:
            warn((*base, "requires"),
                 "requires no dependency: it will scale and heal through outages")
        if w.namespace is not None and w.namespace != config.daemon.namespace:
            warn((*base, "namespace"),
                 f"namespace {w.namespace!r} is not daemon.namespace "
                 f"({config.daemon.namespace!r}): the Role in deploy/ grants the daemon that "
                 "namespace only; add a Role and RoleBinding there, or it gets 403")
    return out
