"""Tell an admin's server how the run went: a JSON POST at run start, for each failed step (with the
last lines it printed, `output_tail`), at run end (each failed step again, with its `output_tail`:
a `donotwait` script fails only after its step was reported, so this is where its lines appear).

Every document says which Mac it comes from (serial number, host name, model, macOS version: `device`),
looked up once, by the background sender, when the first document goes out.
Posts go out in the background, one at a time and in order, so a slow server never holds up a step;
`drain()` (awaited by `EventBus.aclose`) waits a bounded time for the last ones before self-removal.
A webhook that stays down costs a warning in the log, never the run. Secrets in the webhook URL and its
headers never reach a log line, and URLs in the payload lose their credentials and query values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from bootstrapper.engine.events import Event, RunFinished, RunStarted, StepFinished, StepStarted
from bootstrapper.errors import BootstrapperError, FetchError
from bootstrapper.fetch.model import FetchOptions
from bootstrapper.fetch.redact import Redactor, redact_url, secrets_of
from bootstrapper.fetch.webhook import Sleep, check_webhook_url, post_json
from bootstrapper.progress.words import count
from bootstrapper.text import one_line

if TYPE_CHECKING:
    from bootstrapper.platform.base import Platform

log = logging.getLogger(__name__)

#: Characters of a failed step's output tail a document carries (the engine already keeps ~4 KiB).
_TAIL = 8192

#: Says which Mac this is (see `device`); awaited once, before the first post.
Identity = Callable[[], Awaitable[Mapping[str, Any]]]


async def device(platform: Platform) -> dict[str, str]:
    """The Mac's serial number, host name, model and macOS version, so a receiver can tell Macs apart.

    Facts that cannot be read cost a warning, never the webhook: the host name is always there.
    """
    hostname = one_line(socket.gethostname(), 255)
    try:
        facts = await platform.facts()
    except (BootstrapperError, OSError) as exc:
        log.warning("webhook: this Mac's serial number and model are unknown (%s)", exc)
        return {"hostname": hostname}
    return {
        "serial": one_line(facts.serial, 100),
        "hostname": hostname,
        "model": one_line(facts.model, 100),
        "os_version": one_line(facts.os_version, 100),
    }


class WebhookSink:
    """Posts run_started / step_failed / run_finished documents to `url`.

    `options` are the downloads' (CA bundle, client certificate, proxy, per-host headers, allow_http);
    `identity` (e.g. `lambda: device(platform)`) and `context` (e.g. the manifest) are merged into
    every document, so the server can tell machines apart. `transport` and `sleep` are for tests.
    """

    def __init__(
        self,
        url: str,
        options: FetchOptions | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        attempts: int = 4,
        timeout: float = 10.0,
        backoff: float = 1.0,
        drain_timeout: float = 30.0,
        context: Mapping[str, Any] | None = None,
        identity: Identity | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        options = options or FetchOptions()
        check_webhook_url(url, allow_http=options.allow_http)
        self._url = url
        self._options = options
        self._headers = dict(headers or {})
        self._post_options: dict[str, Any] = {
            "attempts": attempts,
            "timeout": timeout,
            "backoff": backoff,
            "transport": transport,
            "sleep": sleep,
        }
        self._drain_timeout = drain_timeout
        self._context = dict(context or {})
        self._find_identity = identity
        self._identity: dict[str, Any] | None = None
        self._redact = Redactor([*secrets_of(url, headers), *options.secrets()])
        self._shown = redact_url(url)
        self._run_id = ""
        self._names: dict[str, tuple[str, str, str]] = {}
        self._queue: asyncio.Queue[dict[str, Any] | None] | None = None
        self._worker: asyncio.Task[None] | None = None
        #: Documents delivered and given up on: for tests and the completion record.
        self.delivered = 0
        self.failed = 0

    # --- the sink protocol --------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        document = self._document(event)
        if document is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self._send(document))  # no loop (a synchronous caller): post inline
            return
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work(self._queue), name="webhook")
        assert self._queue is not None
        self._queue.put_nowait(document)

    async def drain(self) -> None:
        """Wait (bounded) until every queued document was delivered or given up on."""
        worker, queue = self._worker, self._queue
        if worker is None or queue is None:
            return
        queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(worker), self._drain_timeout)
        except TimeoutError:
            log.warning(
                "webhook %s: still busy after %.0f s; dropping what is left", self._shown, self._drain_timeout
            )
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._worker = self._queue = None

    def close(self) -> None:
        if self._worker is not None and not self._worker.done():
            log.warning("webhook %s: closed before its queue was drained", self._shown)
            self._worker.cancel()
        self._worker = self._queue = None

    # --- delivery -----------------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        while (document := await queue.get()) is not None:
            await self._send(document)

    async def _send(self, document: dict[str, Any]) -> None:
        identity = await self._who()
        document = {"event": document["event"], "run_id": document["run_id"], **identity, **document}
        try:
            result = await post_json(
                self._url, document, self._options, headers=self._headers, **self._post_options
            )
        except FetchError as exc:
            self.failed += 1
            log.warning("webhook: could not post %s: %s", document["event"], self._redact(str(exc)))
            return
        self.delivered += 1
        tries = count(result.attempts, "attempt")
        log.debug("webhook %s: posted %s (%s)", self._shown, document["event"], tries)

    async def _who(self) -> dict[str, Any]:
        """The identity, looked up once; a lookup that breaks costs a warning, never the posts."""
        if self._identity is None:
            self._identity = {}
            if self._find_identity is not None:
                try:
                    self._identity = dict(await self._find_identity())
                except Exception as exc:
                    log.warning("webhook: could not tell which Mac this is: %s", exc)
        return self._identity

    # --- documents ----------------------------------------------------------------------------

    def _document(self, event: Event) -> dict[str, Any] | None:
        match event:
            case RunStarted():
                self._run_id = event.run_id
                for step in event.steps:
                    self._names[step.step_id] = (step.name, step.kind, step.phase)
                body: dict[str, Any] = {
                    "source": redact_url(event.source),
                    "item_count": event.item_count,
                    "attempt": event.attempt,
                }
                return self._wrap("run_started", body)
            case StepStarted():
                self._names[event.step_id] = (event.name, event.kind, event.phase)
            case StepFinished(status="failed"):
                name, kind, phase = self._names.get(event.step_id, (event.step_id, "", ""))
                body = {
                    "step_id": event.step_id,
                    "name": one_line(name, 200),
                    "kind": kind,
                    "phase": phase,
                    "reason": self._redact(one_line(event.reason, 1000)),
                    "exit_code": event.exit_code,
                    "duration": round(event.duration, 3),
                    # the step's last lines of output (already one printable line each, and capped)
                    "output_tail": self._redact(event.output_tail[-_TAIL:]),
                }
                return self._wrap("step_failed", body)
            case RunFinished():
                failed: list[dict[str, Any]] = []
                for s in event.failed_steps:
                    entry = {"step_id": s, "name": one_line(self._names.get(s, (s, "", ""))[0], 200)}
                    if tail := event.output_tails.get(s, ""):
                        entry["output_tail"] = self._redact(tail[-_TAIL:])
                    failed.append(entry)
                body = {"result": event.result, "failed_steps": failed, "duration": round(event.duration, 3)}
                return self._wrap("run_finished", body)
        return None

    def _wrap(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"event": name, "run_id": self._run_id, **self._context, **body}
