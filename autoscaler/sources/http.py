"""HTTP plumbing shared by the HTTP sources and the HTTP probes.

`SessionPool` keeps one aiohttp session per (scheme, host, port, TLS settings) with a per-host
connection limit, and an optional global limit on requests in flight. `SessionPool.get` does one
GET (or a form POST, for queries too long for a URL) with no redirects, a deadline covering the
wait for a slot, connect, headers and body, and a body size cap. Identical requests asked while
one is in flight share it, so sources that read the same topic make one call per round. Every
failure becomes a `FetchError` whose reason is short, operator-readable and free of secrets
(`describe_error` words it, also for the probes' `http_check`). The sources (`pulsar.py`,
`prometheus.py`, `tracardi_queue.py`) and probes (`autoscaler/probes/`) turn replies into
signals and check results.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from autoscaler.config import SecretRefs, TlsSettings
from autoscaler.secrets import (
    REDACTED,
    Credentials,
    SecretError,
    redact,
    resolve_credentials,
)
from autoscaler.sources.values import RejectedValueError

T = TypeVar("T")

USER_AGENT = "tracardi-autoscaler"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MAX_REASON_CHARS = 300


class FetchError(Exception):
    """A request that produced no usable reply; `str()` is the operator-facing reason."""


class ReadFailedError(Exception):
    """A whole read or check failed; `str()` is the redacted, operator-facing reason."""


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """A parsed reply, with the secrets that were sent so later text can be redacted too."""

    value: T
    secrets: tuple[str, ...]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise FetchError("invalid JSON") from None
        except RecursionError:
            raise FetchError("invalid JSON: nested too deeply") from None

    def server_message(self) -> str:
        """The server's own error text from a JSON body (`reason`, `detail`, ...), or ""."""
        try:
            body = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return ""
        if isinstance(body, Mapping):
            for key in ("reason", "detail", "message", "error"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    return shorten(value)
        return ""

    def error_detail(self) -> str:
        """`HTTP <status>` plus the server's own message when its body carries one."""
        message = self.server_message()
        return f"HTTP {self.status}: {message}" if message else f"HTTP {self.status}"


def shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def auth_headers(creds: Credentials) -> dict[str, str]:
    """`Authorization` for a bearer token or HTTP basic; raises `SecretError` when ambiguous."""
    if creds.token and creds.username:
        raise SecretError("auth: give a token or a username and password, not both")
    if creds.token:
        return {"Authorization": f"Bearer {creds.token}"}
    if creds.username:
        return {"Authorization": f"Basic {creds.basic()}"}
    if creds.password:
        raise SecretError("auth: a password is set without a username")
    return {}


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """Verification on unless turned off; `ca_file` replaces the system CAs; cert+key for mTLS.
    An unusable file raises the OSError or SSLError, with the setting and file named."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"ca_file {tls.ca_file}: {exc.strerror or exc}") from None
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            files = f"cert_file {tls.cert_file}" + (f", key_file {tls.key_file}"
                                                     if tls.key_file else "")
            raise OSError(f"{files}: {exc.strerror or exc}") from None
    return ctx


def describe_error(exc: BaseException, *, timeout: float) -> str:
    """A short reason for a failed HTTP exchange (connection, TLS, protocol or deadline)."""
    if isinstance(exc, FetchError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"timeout after {timeout}s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate rejected: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        where = f"{exc.host}:{exc.port}"
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"connection refused ({where})"
        return f"cannot connect to {where}: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated response"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad HTTP response: {exc.message}"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def redirect_target(location: str) -> str:
    """`host[:port]` of a redirect's Location, never its userinfo; "elsewhere" when relative."""
    try:
        parts = urlsplit(location)
        port = parts.port
    except ValueError:
        return "an invalid location"
    if not parts.hostname:
        return "elsewhere"
    return shorten(f"{parts.hostname}:{port}" if port else parts.hostname, 100)


def scrub(body: bytes, secrets: Iterable[str]) -> bytes:
    """`body` without the secrets we sent, raw or JSON-escaped.

    Some servers echo the Authorization header in an error body; scrubbing it before anyone
    parses the body means no reason, however it is cut to length, keeps a piece of a secret.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in {secret.encode(), json.dumps(secret)[1:-1].encode()}:
            body = body.replace(form, REDACTED.encode())
    return body


async def _get(
    session: aiohttp.ClientSession,
    url: URL,
    *,
    headers: Mapping[str, str] | None,
    max_bytes: int,
    secrets: Iterable[str] = (),
    form: Mapping[str, str] | None = None,
) -> Reply:
    # A redirect could carry the Authorization header to another host, and a 3xx from an admin
    # API means the URL is wrong: refuse it and say where it pointed.
    method = "GET" if form is None else "POST"
    async with session.request(method, url, headers=headers,
                               data=None if form is None else dict(form),
                               allow_redirects=False) as resp:
        if 300 <= resp.status < 400:
            target = redirect_target(resp.headers.get("Location", ""))
            raise FetchError(f"HTTP {resp.status} redirect to {target} refused")
        if resp.content_length is not None:
            if resp.content_length > max_bytes:
                raise FetchError(f"response over {max_bytes} bytes")
            body = await resp.content.read()  # the parser stops at Content-Length
        else:
            body = await _read_capped(resp.content, max_bytes)
        # Only error replies are scrubbed: they are where echoes happen, and a short secret
        # (a password like "green") must not corrupt the data of a good reply.
        if resp.status >= 400:
            return Reply(status=resp.status, body=scrub(body, secrets))
        return Reply(status=resp.status, body=body)


async def _read_capped(content: aiohttp.StreamReader, max_bytes: int) -> bytes:
    """A body of unknown length (chunked, or up to the close), refused once over the cap."""
    body = bytearray()
    async for chunk in content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"response over {max_bytes} bytes")
    return bytes(body)


SessionKey = tuple[str, str, int, TlsSettings | None]
RequestKey = tuple[object, ...]


Frozen = tuple[tuple[str, str], ...]


def _frozen(items: Mapping[str, str] | None) -> Frozen | None:
    return None if items is None else tuple(sorted(items.items()))


# A source asks for the same URL every few seconds: its parse is remembered, not redone.
@functools.lru_cache(maxsize=4096)
def _target(url: str, query: Frozen | None) -> URL:
    """`url` with `query` added to its own, as aiohttp would build it from `params`."""
    try:
        target = URL(url)
    except ValueError:
        raise FetchError("invalid URL") from None
    return target.extend_query(query) if query else target


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@functools.lru_cache(maxsize=4096)
def _session_key(url: str, tls: TlsSettings) -> SessionKey:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    return (parts.scheme, parts.hostname or "", port, tls if secure else None)


class SessionPool:
    """One aiohttp session per host and TLS settings; closed together by `close()`.

    At most `limit_per_host` requests to one host are under way; the others wait for a slot
    before anything of theirs is built, so a thousand reads queued behind four connections hold
    a coroutine each, not a request each. `max_concurrent` bounds requests in flight across all
    users of the pool. Waiting for a slot counts against the caller's own deadline, so a slow
    source delays nobody past their timeout.
    A request identical to one in flight (URL, parameters, headers, TLS, deadline and size cap)
    waits for that one's reply instead of making its own.
    """

    def __init__(self, *, limit_per_host: int = 4, max_concurrent: int | None = None) -> None:
        self._limit_per_host = limit_per_host
        self._slots = asyncio.Semaphore(max_concurrent) if max_concurrent else None
        self._sessions: dict[SessionKey, aiohttp.ClientSession] = {}
        self._host_slots: dict[SessionKey, asyncio.Semaphore] = {}
        self._in_flight: dict[RequestKey, asyncio.Future[Reply]] = {}
        self._closed = False

    def session(self, url: str, tls: TlsSettings) -> aiohttp.ClientSession:
        """The session for `url`'s host; raises `FetchError` for unusable TLS files."""
        return self._session(_session_key(url, tls), tls)

    def _session(self, key: SessionKey, tls: TlsSettings) -> aiohttp.ClientSession:
        if self._closed:
            raise FetchError("session pool is closed")
        secure = key[0] == "https"
        session = self._sessions.get(key)
        if session is None:
            try:
                context: ssl.SSLContext | bool = ssl_context(tls) if secure else True
            except (OSError, ssl.SSLError) as exc:
                raise FetchError(f"TLS settings unusable: {exc}") from None
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit_per_host=self._limit_per_host, ssl=context),
                cookie_jar=aiohttp.DummyCookieJar(),
                # Every request runs under its caller's own asyncio deadline; aiohttp's default
                # 5-minute timer per request would only be one more timer to set and cancel.
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                # Proxies from the environment would see our credentials; the admin APIs are
                # reached directly from inside the cluster.
                trust_env=False,
            )
            self._sessions[key] = session
        return session

    async def fetch(
        self,
        url: str,
        *,
        auth: SecretRefs,
        tls: TlsSettings,
        timeout_seconds: float,
        parse: Callable[[Reply], T],
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Fetched[T]:
        """Resolve `auth`, GET `url` with it (POST `form` when given), and parse the reply: the
        one way sources and probes talk HTTP.

        Every failure, including a parse error and an unexpected exception, becomes a
        `ReadFailedError` whose message names the cause and carries no secret.
        """
        secrets: tuple[str, ...] = ()
        try:
            creds = resolve_credentials(auth)
            secrets = creds.redactable()
            reply = await self.get(url, tls=tls, timeout_seconds=timeout_seconds,
                                   headers=auth_headers(creds), params=params, form=form,
                                   max_bytes=max_bytes, secrets=secrets)
            return Fetched(parse(reply), secrets)
        except (SecretError, FetchError, RejectedValueError) as exc:
            raise ReadFailedError(redact(str(exc), secrets)) from None
        except Exception as exc:  # a read must never raise anything else into the daemon
            reason = redact(f"unexpected {type(exc).__name__}: {exc}", secrets)
            raise ReadFailedError(shorten(reason)) from None

    async def get(
        self,
        url: str,
        *,
        tls: TlsSettings,
        timeout_seconds: float,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        secrets: Iterable[str] = (),
    ) -> Reply:
        """One GET (a POST of `form` when given) within `timeout_seconds`, the wait for a slot
        included, or the reply to the identical request already in flight.

        Raises `FetchError` with a redacted reason; an error reply's body comes back with
        `secrets` scrubbed from it.
        """
        secrets = tuple(secrets)
        query = _frozen(params)
        key: RequestKey = (url, query, _frozen(form), _frozen(headers), tls, timeout_seconds,
                           max_bytes)
        while (shared := self._in_flight.get(key)) is not None:
            try:
                # Shielded: a joiner that gives up does not cancel the others' reply.
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                if shared.cancelled() and not _being_cancelled():
                    continue  # the first caller gave up (a reload cancelled its read): ask again
                raise
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = reply
        try:
            got = await self._request(url, query, tls=tls, timeout_seconds=timeout_seconds,
                                      headers=headers, form=form, max_bytes=max_bytes,
                                      secrets=secrets)
        except asyncio.CancelledError:
            reply.cancel()
            raise
        except BaseException as exc:
            reply.set_exception(exc)
            reply.exception()  # retrieved: there may be no one else waiting for it
            raise
        else:
            reply.set_result(got)
            return got
        finally:
            if self._in_flight.get(key) is reply:
                del self._in_flight[key]

    async def _request(
        self,
        url: str,
        query: Frozen | None,
        *,
        tls: TlsSettings,
        timeout_seconds: float,
        headers: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        max_bytes: int,
        secrets: tuple[str, ...],
    ) -> Reply:
        try:
            key = _session_key(url, tls)
            async with asyncio.timeout(timeout_seconds), self._slots or contextlib.nullcontext(), \
                    self._host_slot(key):
                return await _get(self._session(key, tls), _target(url, query), headers=headers,
                                  form=form, max_bytes=max_bytes, secrets=secrets)
        except (FetchError, aiohttp.ClientError, OSError) as exc:
            reason = describe_error(exc, timeout=timeout_seconds)
            raise FetchError(redact(reason, secrets)) from None

    def _host_slot(self, key: SessionKey) -> asyncio.Semaphore:
        slot = self._host_slots.get(key)
        if slot is None:
            slot = self._host_slots[key] = asyncio.Semaphore(self._limit_per_host)
        return slot

    async def close(self) -> None:
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
