"""MLflow's scoring app with limits in front of it (`vocalsep serve`, whose command line is `vocalsep.cli.serve`).

The app that answers is MLflow's own (`mlflow.pyfunc.scoring_server.init`,
what `mlflow models serve` runs), around the same registered pyfunc. In front
of it sits `Guard`, a plain ASGI layer that refuses what would cost memory,
time or a stack trace before any of it is spent:

- `POST /invocations` needs `Content-Type: application/json` (415 otherwise);
- the body may not exceed `max_body_bytes` (413, read no further): the size
  of `export.max_seconds` of 16-bit stereo WAV at the model's rate, as base64,
  plus 64 KiB; a declared Content-Length over it is refused before reading;
- a JSON array of samples may not hold more rows than `export.max_seconds`
  allows (413, counted on the raw bytes before parsing);
- the JSON must parse, nest no deeper than MLflow's request forms need, hold
  one of `inputs`/`instances` (numbers shaped (samples, 2): strings and
  booleans are refused) and only the params the model takes (400 naming the
  field);
- encoded audio (`params.audio_base64`) is checked by the model against the
  container header's duration before decoding (400);
- at most `serve.workers` requests separate at once and `serve.queue` wait;
  more get 503 with Retry-After;
- a request still separating after `serve.timeout_seconds` is answered 504
  and its work is stopped (the core checks the deadline between batches);
- an unexpected error answers 500 with a one-line message, never a traceback.

`mlflow models serve` keeps working unchanged; it just has none of these.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any


from vocalsep.config import ServeParams
from vocalsep.errors import VocalsepError
from vocalsep.provenance import learned_from_demo_only
from vocalsep.serving.limits import DRAIN_FACTOR, Limits, RequestError, check_body

log = logging.getLogger("vocalsep.serve")  # the command's name, as its log lines always read

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Guard:
    """ASGI layer in front of MLflow's scoring app: limits, queue, deadline, no tracebacks out."""

    def __init__(self, app: Callable, limits: Limits):
        self.app, self.limits = app, limits
        self.learned_from = "unknown"
        self.running = asyncio.Semaphore(limits.serve.workers)
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/invocations":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            await self._admit(scope, body, send)
        except RequestError as err:
            await _answer(send, err.status, {"error_code": err.code, "message": err.message}, err.headers)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        if scope["method"] != "POST":
            raise RequestError(405, "METHOD_NOT_ALLOWED", "POST a JSON body to /invocations",
                               {"Allow": "POST"})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise RequestError(415, "UNSUPPORTED_MEDIA_TYPE",
                               f"Content-Type: expected application/json, got {kind or 'none'}; send "
                               '{"inputs": [[left, right], ...]} or an audio file as params.audio_base64')
        declared = headers.get("content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if size is not None and size > DRAIN_FACTOR * self.limits.max_body_bytes:
            raise self._too_large(size)  # answered at once: the client may see the connection close
        body, seen = bytearray(), 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "BAD_REQUEST", "the client went away")
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen <= self.limits.max_body_bytes:
                body += chunk
            else:
                body = bytearray()  # over the limit: keep reading (and dropping) so the client, which
                # sends its whole body before it reads, gets the 413 instead of a broken pipe
            if not message.get("more_body"):
                if seen > self.limits.max_body_bytes:
                    raise self._too_large(seen)
                return bytes(body)
            if seen > DRAIN_FACTOR * self.limits.max_body_bytes:
                raise self._too_large(seen)

    def _too_large(self, size: int) -> RequestError:
        return RequestError(413, "REQUEST_TOO_LARGE",
                            f"body: {size} bytes is more than the limit of {self.limits.max_body_bytes} "
                            f"(export.max_seconds = {self.limits.max_seconds:g} s of 16-bit stereo WAV as base64); "
                            "send a shorter excerpt or a compressed file (flac, mp3) as params.audio_base64")

    async def _admit(self, scope: Scope, body: bytes, send: Send) -> None:
        if self.running.locked() and self.waiting >= self.limits.serve.queue:
            retry = max(1, round(self.limits.serve.timeout_seconds / 10))
            raise RequestError(503, "SERVER_BUSY", f"{self.limits.serve.workers} request(s) separating and "
                               f"{self.waiting} waiting (serve.queue); try again later", {"Retry-After": str(retry)})
        self.waiting += 1
        try:
            await self.running.acquire()
        finally:
            self.waiting -= 1
        try:
            await asyncio.to_thread(check_body, body, self.limits)  # parsing is CPU work: off the loop
            await self._call(scope, body, send)
        finally:
            self.running.release()

    async def _call(self, scope: Scope, body: bytes, send: Send) -> None:
        from vocalsep.separate import deadline

        timeout = self.limits.serve.timeout_seconds
        sent = {"started": False}
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                await asyncio.Event().wait()  # the body was delivered; nothing else will come
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            with deadline(timeout):  # the context is copied into the model's worker thread
                await asyncio.wait_for(self.app(scope, replay, _scrubbed(send, sent)), timeout=timeout)
        except (asyncio.TimeoutError, TimeoutError):
            if not sent["started"]:
                raise RequestError(504, "TIMEOUT", f"separation took longer than serve.timeout_seconds "
                                   f"({timeout:g} s) and was stopped; send a shorter excerpt") from None


def _scrubbed(send: Send, sent: dict[str, bool]) -> Send:
    """Pass the app's answer through, except that a 500's body (MLflow's has a traceback) is replaced."""
    state = {"error": False}

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["started"] = True
            if message["status"] >= 500:
                state["error"] = True
                return
        elif message["type"] == "http.response.body" and state["error"]:
            if message.get("more_body"):
                return
            log.error("the scoring app failed on a request (answered 500 without details)")
            body = json.dumps({"error_code": "INTERNAL_ERROR",
                               "message": "the server failed on this request; its log has the details"}).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


async def _answer(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def build_app(model_uri: str, serve: ServeParams, allow_demo: bool = False) -> Guard:
    """Load the pyfunc from the registry, build MLflow's scoring app for it, put the Guard in front.

    A model that learned only from the synthetic demo corpus is refused unless `allow_demo`: it says
    little about real voices (`make run`'s trained model is one; its champion is the base model).
    """
    import mlflow
    from mlflow.pyfunc import scoring_server

    # MLflow's own timeout answers 504 but leaves the work running: ours must fire first
    os.environ["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(int(serve.timeout_seconds) + 60)
    model = mlflow.pyfunc.load_model(model_uri)
    separator = model.unwrap_python_model()
    config = getattr(separator, "config", None)
    if config is None:
        raise VocalsepError(f"{model_uri}: not a vocalsep model (no serving config); serve a model the "
                            "export stage registered")
    origin = getattr(separator, "provenance", None)
    if learned_from_demo_only(origin) and not allow_demo:
        raise VocalsepError(f"{model_uri}: learned only from the synthetic demo corpus, which says little about real "
                            "voices; serve the shipped base model (the export stage registers it; in a registry "
                            "export never touched run vocalsep register-base; vocalsep models lists the versions), "
                            "or pass --allow-demo")
    names = tuple(p.name for p in (model.metadata.get_params_schema() or []))
    limits = Limits.for_model(config.sample_rate, config.max_seconds, names, serve)
    guard = Guard(scoring_server.init(model), limits)
    guard.learned_from = (origin or {}).get("trained_on") or "unknown (registered without provenance)"
    return guard
