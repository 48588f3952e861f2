"""Secret references: resolution from env or file, errors that never show the value, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.config import SecretRefs
from autoscaler.secrets import SecretError, redact, resolve_credentials, resolve_secret

VALUE = "hunter2-very-secret"


def test_reads_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_SECRET", VALUE)

    assert resolve_secret(env="APP_SECRET", file=None) == VALUE


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(f"{VALUE}\n", VALUE, id="trailing-newline-stripped"),
        pytest.param(f"{VALUE}\r\n", VALUE, id="trailing-crlf-stripped"),
        pytest.param(f" {VALUE} ", f" {VALUE} ", id="spaces-kept"),
    ],
)
def test_reads_from_file(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "secret").write_text(content)

    assert resolve_secret(env=None, file=tmp_path / "secret") == expected


def test_nothing_configured_is_none() -> None:
    assert resolve_secret(env=None, file=None) is None


@pytest.mark.parametrize(
    ("env_value", "file_content", "message"),
    [
        pytest.param(None, None, "environment variable APP_SECRET is not set", id="env-unset"),
        pytest.param("", None, "environment variable APP_SECRET is empty", id="env-empty"),
        pytest.param(None, "\n", "secret file {file} is empty", id="file-empty"),
        pytest.param(None, None, "cannot read secret file {file}: No such file or directory",
                     id="file-missing"),
    ],
)
def test_errors_name_the_reference(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                   env_value: str | None, file_content: str | None,
                                   message: str) -> None:
    file = tmp_path / "secret"
    if file_content is not None:
        file.write_text(file_content)
    monkeypatch.delenv("APP_SECRET", raising=False)
    if env_value is not None:
        monkeypatch.setenv("APP_SECRET", env_value)
    use_file = "{file}" in message

    with pytest.raises(SecretError) as caught:
        resolve_secret(env=None if use_file else "APP_SECRET", file=file if use_file else None)

    assert str(caught.value) == message.format(file=file)


def test_credentials_repr_hides_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_SECRET", VALUE)

    creds = resolve_credentials(SecretRefs(username="svc", password_env="APP_SECRET"))

    assert creds.password == VALUE
    assert creds.secrets() == (VALUE,)
    assert VALUE not in repr(creds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"login failed with {VALUE}", "login failed with ***", id="secret"),
        pytest.param("cannot reach https://admin:pw@es:9200/_cluster/health",
                     "cannot reach https://***@es:9200/_cluster/health", id="url-userinfo"),
        pytest.param("redis://:pw@redis:6379/0 refused", "redis://***@redis:6379/0 refused",
                     id="url-password-only"),
        pytest.param("nothing to hide", "nothing to hide", id="clean"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text, [VALUE, ""]) == expected
