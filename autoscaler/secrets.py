"""Secrets from environment variables or mounted files, and their redaction from text.

Config (`config.SecretRefs`) only names where a secret lives; sources and probes call
`resolve_credentials` on every read so that a rotated Kubernetes Secret is picked up without a
restart. Errors name the variable or file, never the value, and `redact` scrubs secrets and URL
credentials from any text (library errors included) before it reaches logs, metrics or events.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.config import SecretRefs

REDACTED = "***"
MAX_SECRET_BYTES = 64 * 1024
_URL_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")


class SecretError(ValueError):
    """A secret reference cannot be resolved; the message names the reference, not the value."""


def resolve_secret(*, env: str | None, file: Path | None) -> str | None:
    """The secret named by `env` or `file`, or None when neither is given.

    A mounted file keeps its trailing newline as written by most tools (`echo`, `kubectl create
    secret --from-file`), so trailing CR/LF is stripped; other whitespace is kept as part of the
    secret.
    """
    if env and file:
        raise SecretError(f"give the environment variable {env} or the file {file}, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"environment variable {env} is not set")
        if not value:
            raise SecretError(f"environment variable {env} is empty")
        return value
    if file:
        try:
            with file.open("rb") as fh:
                raw = fh.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SecretError(f"cannot read secret file {file}: {reason}") from None
        if len(raw) > MAX_SECRET_BYTES:
            raise SecretError(f"secret file {file} is over {MAX_SECRET_BYTES} bytes")
        try:
            value = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretError(f"secret file {file} is not UTF-8 text") from None
        if not value:
            raise SecretError(f"secret file {file} is empty")
        return value
    return None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every given secret and every `scheme://user:pass@` credential replaced."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _URL_USERINFO.sub(f"{REDACTED}@", text)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Resolved credentials of one source or probe; `repr` never shows the values."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def basic(self) -> str | None:
        """The HTTP basic credential (`base64(username:password)`), or None without a username.

        It is as secret as the password: a server that echoes our Authorization header must
        not get it into a reason.
        """
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return base64.b64encode(pair).decode("ascii")

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.token) if s)

    def redactable(self) -> tuple[str, ...]:
        """`secrets()` plus the encoded form an HTTP client sends: everything `redact` needs."""
        basic = self.basic() if self.password else None
        return (*self.secrets(), basic) if basic else self.secrets()


def resolve_credentials(refs: SecretRefs) -> Credentials:
    """Resolve the password and token a `SecretRefs` points to; raises `SecretError`."""
    return Credentials(
        username=refs.username,
        password=resolve_secret(env=refs.password_env, file=refs.password_file),
        token=resolve_secret(env=refs.token_env, file=refs.token_file),
    )
