"""The providers' batch APIs on the simulated model (what the official SDKs call)::

    OpenAI
    POST /v1/files                           multipart ``file`` + ``purpose=batch`` → a file object
    GET  /v1/files/{id}/content              a file's bytes (input, output or error JSONL)
    POST /v1/batches                         {input_file_id, endpoint, completion_window}
    GET  /v1/batches/{id}                    validating → in_progress → completed | expired | failed
    Gemini (``_gemini``)
    POST /upload/v1beta/files                resumable: start, then upload, finalize
    POST /v1beta/models/{m}:batchGenerateContent   {"batch": {"inputConfig": {"fileName"}}}
    GET  /v1beta/batches/{id}                an operation, BATCH_STATE_PENDING → RUNNING → SUCCEEDED
    GET  /download/v1beta/files/{id}:download  the responses file
    Anthropic
    POST /v1/messages/batches                {"requests": [{custom_id, params}]}
    GET  /v1/messages/batches/{id}           in_progress → ended (``results_url`` once ended)
    GET  /v1/messages/batches/{id}/results   JSONL, one result per request

A batch is worked on ``batch_delay × time_scale`` seconds after it is created.
Every line goes through the engine (the oracle's answers, the pack faults and
latency; the per-minute rate limits do not apply to batches), except lines
drawn to fail (``batch_failure_rate``: a 500 in the error file / an
``errored`` api_error) or to expire (``batch_expire_rate``: ``batch_expired``
/ ``expired``; an OpenAI batch with an expired line ends ``expired``). The
draws are seeded by the line's body and how often that body was seen, so a
resubmitted line draws again. Results come back in a seeded shuffled order:
a client must join on ``custom_id``.

OpenAI's file is validated as OpenAI does: unique ``custom_id``, one model,
``url`` = the batch's endpoint, at most 50,000 lines and 200 MB; otherwise the
batch ends ``failed`` with ``errors``. Anthropic refuses more than 100,000
requests with a 400.

Other providers' OpenAI-shaped batch APIs (``SimConfig.batch_api``), as their docs
describe them (``BATCH_APIS``; written apart from the client's own table, so that a wrong
fact in one is caught by the other):

    groq       purpose ``batch``; completion_window 24h to 7d; 50,000 lines / 200 MB
    together   purpose ``batch-api``; lines ``{custom_id, body}``; window 24h only; 100 MB;
               create answers ``{"job": batch}``; statuses in capitals
    deepinfra  OpenAI's shape (its docs give no differences)

Anthropic's prompt cache in a batch (the engine's ``anthropic_cache``, shared with
``/v1/messages``): a batch's requests run in parallel, so a line reads the prefix only
from an entry that was live when the batch started; every other line writes it (and
pays the write). A cold batch therefore reads nothing; one request sent through
``/v1/messages`` first, and answered, makes the whole batch read it.

Why one module: it is one simulated API surface, every provider's batch endpoints (OpenAI's
shape and its variants, Anthropic's, Gemini's) over one in-memory file and batch store. They
share the lifecycle (created, worked on after the delay, ended), the seeded fault draw and
the engine call per line; what differs per provider is reading its lines and writing its
objects, a few methods each. Split by provider, each module would need the store and the
lifecycle from a third.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmbatch._task import canonical_json

from ._anthropic import BadBody, _Request, _translate_error, _translate_message
from ._gemini import BadRequest, gemini_error, read_request, to_gemini
from ._ratelimit import Admission
from .engine import SimEngine, SimResponse

__all__ = ["BatchStats", "SimBatches"]

JSON = Any
OPENAI_MAX_LINES = 50_000
OPENAI_MAX_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BatchShape:
    """How one provider's OpenAI-shaped batch API differs from OpenAI's."""

    purpose: str = "batch"
    windows: frozenset[str] = frozenset({"24h"})
    max_bytes: int = OPENAI_MAX_BYTES
    line_url: bool = True
    """Lines carry ``method`` and ``url`` (OpenAI); False: ``{custom_id, body}`` only."""
    wrapped: bool = False
    """``POST /v1/batches`` answers ``{"job": batch}`` and statuses are in capitals."""


BATCH_APIS: dict[str, BatchShape] = {
    "openai": BatchShape(),
    # https://console.groq.com/docs/batch
    "groq": BatchShape(windows=frozenset({f"{h}h" for h in range(24, 169)} | {f"{d}d" for d in range(1, 8)})),
    # https://docs.together.ai/docs/inference/batch/overview
    "together": BatchShape(purpose="batch-api", max_bytes=100 * 1024 * 1024, line_url=False, wrapped=True),
    # https://deepinfra.com/blog/batch-api: "OpenAI-compatible", no differences given
    "deepinfra": BatchShape(),
}
ANTHROPIC_MAX_REQUESTS = 100_000
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


def _free() -> Admission:
    return Admission(True)


@dataclass(slots=True)
class BatchStats:
    """Counters under ``batches`` in ``/sim/stats``."""

    submitted: Counter[str] = field(default_factory=Counter)
    """Batches created, by API (``openai``, ``anthropic``)."""
    lines: int = 0
    lines_failed: int = 0
    lines_expired: int = 0
    files_uploaded: int = 0
    largest_batch_lines: int = 0
    largest_batch_bytes: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "submitted": sum(self.submitted.values()),
            "submitted_by_api": dict(sorted(self.submitted.items())),
            "lines": self.lines,
            "lines_failed": self.lines_failed,
            "lines_expired": self.lines_expired,
            "files_uploaded": self.files_uploaded,
            "largest_batch_lines": self.largest_batch_lines,
            "largest_batch_bytes": self.largest_batch_bytes,
        }


@dataclass(slots=True)
class _File:
    id: str
    data: bytes
    purpose: str
    filename: str
    created: int


@dataclass(slots=True)
class _Batch:
    """One batch of either API; ``lines`` are (custom_id, body) in input order."""

    id: str
    api: str
    created: float
    lines: list[tuple[str, JSON]]
    status: str
    endpoint: str = ""
    window: str = "24h"
    model: str = ""
    display_name: str = ""
    input_file_id: str = ""
    metadata: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended: float | None = None


class SimBatches:
    """Both batch APIs over one ``SimEngine``.

        batches = SimBatches(SimEngine(SimConfig(seed=1, batch_delay=2.0)))
        file = batches.upload(jsonl_bytes, purpose="batch", filename="in.jsonl")
        batch = batches.create_openai({"input_file_id": file.body["id"], ...})

    ``sleep`` waits out the batch delay (tests inject a fast one); ``wall_clock``
    dates the objects. Call ``aclose()`` to stop batches still being worked on.
    """

    def __init__(
        self,
        engine: SimEngine,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.stats = BatchStats()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._clock = clock
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._seen: Counter[str] = Counter()
        self._ids = 0
        self._work: set[asyncio.Task[None]] = set()
        self._uploads: dict[str, str] = {}
        """Gemini's resumable uploads started and not finished: id → display name."""

    def reset_stats(self) -> None:
        self.stats = BatchStats()

    async def aclose(self) -> None:
        for task in self._work:
            task.cancel()
        await asyncio.gather(*self._work, return_exceptions=True)
        self._work.clear()

    async def drain(self) -> None:
        """Wait until every batch submitted so far has ended (for tests driving this directly)."""
        while self._work:
            await asyncio.gather(*list(self._work), return_exceptions=True)

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:06d}"

    # -- OpenAI: files -------------------------------------------------------------------

    @property
    def shape(self) -> BatchShape:
        return BATCH_APIS[self.engine.config.batch_api]

    def upload(self, data: bytes, *, purpose: str, filename: str) -> SimResponse:
        """``POST /v1/files``."""
        if purpose != self.shape.purpose:
            return _openai_error(
                400, f"purpose {purpose!r} is not supported by this batch API; use {self.shape.purpose}"
            )
        self.stats.files_uploaded += 1
        return SimResponse(200, self._file(data, purpose, filename or "upload.jsonl"))

    def _file(self, data: bytes, purpose: str, filename: str) -> dict[str, Any]:
        file = _File(self._next_id("file-sim"), data, purpose, filename, int(self._wall_clock()))
        self._files[file.id] = file
        return {
            "id": file.id,
            "object": "file",
            "bytes": len(data),
            "created_at": file.created,
            "filename": file.filename,
            "purpose": purpose,
            "status": "processed",
        }

    def file_content(self, file_id: str) -> bytes | None:
        """``GET /v1/files/{id}/content``; None when there is no such file."""
        file = self._files.get(file_id)
        return None if file is None else file.data

    # -- OpenAI: batches ---------------------------------------------------------------

    def create_openai(self, body: Any) -> SimResponse:
        """``POST /v1/batches``."""
        if not isinstance(body, dict):
            return _openai_error(400, "the request body must be a JSON object")
        file = self._files.get(str(body.get("input_file_id")))
        if file is None:
            return _openai_error(400, f"no file with id {body.get('input_file_id')!r}", "input_file_id")
        window = body.get("completion_window")
        if window not in self.shape.windows:
            allowed = "24h" if len(self.shape.windows) == 1 else "24h to 7d"
            return _openai_error(
                400, f"completion_window {window!r} is not supported: {allowed}", "completion_window"
            )
        endpoint = body.get("endpoint")
        if endpoint != "/v1/chat/completions":
            return _openai_error(400, f"endpoint {endpoint!r} is not supported by the simulator", "endpoint")
        batch = _Batch(
            id=self._next_id("batch_sim"),
            api="openai",
            created=self._wall_clock(),
            lines=[],
            status="validating",
            endpoint=endpoint,
            input_file_id=file.id,
            metadata=body.get("metadata"),
            window=window,
        )
        batch.lines, batch.errors = _read_openai_file(file.data, endpoint, self.shape)
        self._start(batch, len(file.data))
        created = self._openai_object(batch)
        return SimResponse(200, {"job": created} if self.shape.wrapped else created)

    def get_openai(self, batch_id: str) -> SimResponse:
        """``GET /v1/batches/{id}``."""
        batch = self._batches.get(batch_id)
        if batch is None or batch.api != "openai":
            return _openai_error(404, f"No batch found with id '{batch_id}'.", code="not_found")
        return SimResponse(200, self._openai_object(batch))

    def _openai_object(self, batch: _Batch) -> dict[str, Any]:
        created = int(batch.created)
        ended = int(batch.ended) if batch.ended is not None else None
        failed = batch.counts["failed"] + batch.counts["expired"]
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.window,
            "status": batch.status.upper() if self.shape.wrapped else batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": created,
            "in_progress_at": created if batch.status != "validating" else None,
            "expires_at": created + 86_400,
            "finalizing_at": ended,
            "completed_at": ended if batch.status == "completed" else None,
            "failed_at": ended if batch.status == "failed" else None,
            "expired_at": ended if batch.status == "expired" else None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {
                "total": len(batch.lines),
                "completed": batch.counts["succeeded"],
                "failed": failed,
            },
            "metadata": batch.metadata,
        }

    # -- Anthropic -------------------------------------------------------------------------

    def create_anthropic(self, body: Any, origin: str) -> SimResponse:
        """``POST /v1/messages/batches``; ``origin`` (``http://host:port``) makes ``results_url``."""
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _anthropic_error(400, "invalid_request_error", "requests: must be a non-empty list")
        if len(requests) > ANTHROPIC_MAX_REQUESTS:
            message = f"requests: at most {ANTHROPIC_MAX_REQUESTS} requests per batch"
            return _anthropic_error(400, "invalid_request_error", message)
        lines: list[tuple[str, JSON]] = []
        for i, request in enumerate(requests):
            if not isinstance(request, dict) or not isinstance(request.get("custom_id"), str):
                return _anthropic_error(
                    400, "invalid_request_error", f"requests.{i}.custom_id: Field required"
                )
            lines.append((request["custom_id"], request.get("params")))
        if len({custom_id for custom_id, _ in lines}) != len(lines):
            return _anthropic_error(400, "invalid_request_error", "requests: custom_id values must be unique")
        batch = _Batch(
            id=self._next_id("msgbatch_sim"),
            api="anthropic",
            created=self._wall_clock(),
            lines=lines,
            status="in_progress",
        )
        self._start(batch, len(canonical_json(requests).encode()))
        return SimResponse(200, self._anthropic_object(batch, origin))

    def get_anthropic(self, batch_id: str, origin: str) -> SimResponse:
        """``GET /v1/messages/batches/{id}``."""
        batch = self._batches.get(batch_id)
        if batch is None or batch.api != "anthropic":
            return _anthropic_error(404, "not_found_error", f"No message batch with id {batch_id!r}")
        return SimResponse(200, self._anthropic_object(batch, origin))

    def anthropic_results(self, batch_id: str) -> bytes | None:
        """``GET /v1/messages/batches/{id}/results``; None until the batch has ended."""
        batch = self._batches.get(batch_id)
        if batch is None or batch.api != "anthropic" or batch.ended is None:
            return None
        return _jsonl(batch.results)

    def _anthropic_object(self, batch: _Batch, origin: str) -> dict[str, Any]:
        ended = batch.ended is not None
        counts = batch.counts
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(batch.lines),
                "succeeded": counts["succeeded"],
                "errored": counts["failed"],
                "canceled": 0,
                "expired": counts["expired"],
            },
            "created_at": _rfc3339(batch.created),
            "expires_at": _rfc3339(batch.created + 86_400),
            "ended_at": _rfc3339(batch.ended) if batch.ended is not None else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{origin}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    # -- working on a batch ----------------------------------------------------------------

    def _start(self, batch: _Batch, size: int) -> None:
        self._batches[batch.id] = batch
        self.stats.submitted[batch.api] += 1
        self.stats.lines += len(batch.lines)
        self.stats.largest_batch_lines = max(self.stats.largest_batch_lines, len(batch.lines))
        self.stats.largest_batch_bytes = max(self.stats.largest_batch_bytes, size)
        task = asyncio.create_task(self._work_on(batch))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _work_on(self, batch: _Batch) -> None:
        config = self.engine.config
        await self._sleep(config.batch_delay * config.time_scale)
        if batch.errors:  # an OpenAI file that failed validation: nothing runs
            batch.status, batch.ended = "failed", self._wall_clock()
            return
        batch.status = "in_progress"
        # What Anthropic's cache holds as the batch starts: its lines, run in parallel, read
        # only that, never what another line of the same batch writes.
        cache = self.engine.anthropic_cache
        now = self._clock()
        live = frozenset(key for key, expiry in cache.items() if expiry > now)

        async def answer(custom_id: str, body: JSON) -> tuple[str, dict[str, Any]]:
            if batch.api == "openai":
                return await self._openai_line(custom_id, body)
            if batch.api == "gemini":
                return await self._gemini_line(custom_id, body, batch.model)
            return await self._anthropic_line(custom_id, body, live)

        results = await asyncio.gather(*(answer(custom_id, body) for custom_id, body in batch.lines))
        for kind, _ in results:
            batch.counts[kind] += 1
        self.stats.lines_failed += batch.counts["failed"]
        self.stats.lines_expired += batch.counts["expired"]
        lines = [line for _, line in results]
        random.Random(f"{config.seed}:{batch.id}").shuffle(lines)  # order is not preserved
        if batch.api == "openai":
            output = [line for line in lines if (line.get("response") or {}).get("status_code") == 200]
            errors = [line for line in lines if (line.get("response") or {}).get("status_code") != 200]
            if output:
                batch.output_file_id = self._file(_jsonl(output), "batch_output", "output.jsonl")["id"]
            if errors:
                batch.error_file_id = self._file(_jsonl(errors), "batch_output", "errors.jsonl")["id"]
            batch.status = "expired" if batch.counts["expired"] else "completed"
        elif batch.api == "gemini":
            batch.output_file_id = self._file(_jsonl(lines), "batch_output", "responses.jsonl")["id"]
            batch.status = "BATCH_STATE_SUCCEEDED"
        else:
            batch.results = lines
            batch.status = "ended"
        batch.ended = self._wall_clock()

    # -- Gemini -------------------------------------------------------------------------

    def start_upload(self, meta: Any) -> str:
        """A resumable upload's first step (``X-Goog-Upload-Command: start``): its id."""
        upload_id = self._next_id("upload-sim")
        name = None
        if isinstance(meta, dict) and isinstance(meta.get("file"), dict):
            name = meta["file"].get("displayName")
        self._uploads[upload_id] = str(name or "upload.jsonl")
        return upload_id

    def finish_upload(self, upload_id: str, data: bytes) -> SimResponse:
        """``upload, finalize``: the file, as ``{"file": File}``."""
        name = self._uploads.pop(upload_id, None)
        if name is None:
            return gemini_error(404, f"no upload {upload_id}")
        self.stats.files_uploaded += 1
        return SimResponse(200, {"file": self._gemini_file(self._file(data, "batch", name))})

    def _gemini_file(self, file: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": f"files/{file['id']}",
            "displayName": file["filename"],
            "mimeType": "application/jsonl",
            "sizeBytes": str(file["bytes"]),
            "createTime": _rfc3339(file["created_at"]),
            "state": "ACTIVE",
            "source": "UPLOADED",
        }

    def create_gemini(self, model: str, body: Any) -> SimResponse:
        """``POST /v1beta/models/{model}:batchGenerateContent`` with an uploaded file."""
        batch_spec = body.get("batch") if isinstance(body, dict) else None
        source = batch_spec.get("inputConfig") if isinstance(batch_spec, dict) else None
        file_name = source.get("fileName") if isinstance(source, dict) else None
        file = self._files.get(str(file_name).removeprefix("files/")) if file_name else None
        if file is None or batch_spec is None:
            return gemini_error(400, f"batch.inputConfig.fileName: no such file {file_name!r}")
        lines, problem = _read_gemini_file(file.data)
        if problem:
            return gemini_error(400, problem)
        batch = _Batch(
            id=self._next_id("batch-sim"),
            api="gemini",
            created=self._wall_clock(),
            lines=lines,
            status="BATCH_STATE_PENDING",
            input_file_id=file.id,
            model=model,
            display_name=str(batch_spec.get("displayName") or ""),
        )
        self._start(batch, len(file.data))
        return SimResponse(200, self._gemini_object(batch))

    def get_gemini(self, batch_id: str) -> SimResponse:
        """``GET /v1beta/batches/{id}``."""
        batch = self._batches.get(batch_id)
        if batch is None or batch.api != "gemini":
            return gemini_error(404, f"batches/{batch_id} not found")
        return SimResponse(200, self._gemini_object(batch))

    def _gemini_object(self, batch: _Batch) -> dict[str, Any]:
        state = batch.status if batch.status.startswith("BATCH_STATE_") else "BATCH_STATE_RUNNING"
        done = batch.ended is not None
        failed = batch.counts["failed"] + batch.counts["expired"]
        metadata: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{batch.model}",
            "displayName": batch.display_name,
            "state": state,
            "createTime": _rfc3339(batch.created),
            "updateTime": _rfc3339(batch.ended or batch.created),
            "batchStats": {
                "requestCount": str(len(batch.lines)),
                "successfulRequestCount": str(batch.counts["succeeded"]),
                "failedRequestCount": str(failed),
                "pendingRequestCount": str(0 if done else len(batch.lines)),
            },
        }
        if done:
            metadata["endTime"] = _rfc3339(batch.ended or batch.created)
            metadata["output"] = {"responsesFile": f"files/{batch.output_file_id}"}
        operation: dict[str, Any] = {"name": f"batches/{batch.id}", "metadata": metadata, "done": done}
        if done:
            operation["response"] = {"@type": metadata["@type"], **metadata}
        return operation

    async def _gemini_line(self, key: str, request: JSON, model: str) -> tuple[str, dict[str, Any]]:
        fate = self._draw(request)
        if fate == "expired":
            error = gemini_error(504, "Deadline expired before operation could complete.").body["error"]
            return "expired", {"key": key, "error": {**error, "status": "DEADLINE_EXCEEDED"}}
        if fate == "failed":
            return "failed", {
                "key": key,
                "error": gemini_error(500, "Internal error encountered.").body["error"],
            }
        try:
            chat = read_request(model, request)
        except BadRequest as exc:
            return "failed", {"key": key, "error": gemini_error(400, str(exc)).body["error"]}
        response = to_gemini(await self.engine.chat(chat, admit=_free, automatic_cache=False), model)
        if response.status != 200:
            return "failed", {"key": key, "error": response.body["error"]}
        return "succeeded", {"key": key, "response": response.body}

    def _draw(self, body: JSON) -> str:
        """``ok``, ``failed`` or ``expired`` for one line, seeded by its body and repeats."""
        digest = hashlib.sha256(canonical_json(body).encode()).hexdigest()
        occurrence = self._seen[digest]
        self._seen[digest] += 1
        config = self.engine.config
        draw = random.Random(f"{config.seed}:batch:{digest}:{occurrence}").random()
        if draw < config.batch_expire_rate:
            return "expired"
        if draw < config.batch_expire_rate + config.batch_failure_rate:
            return "failed"
        return "ok"

    async def _openai_line(self, custom_id: str, body: JSON) -> tuple[str, dict[str, Any]]:
        ident = hashlib.sha256(f"{custom_id}:{canonical_json(body)}".encode()).hexdigest()[:24]
        line: dict[str, Any] = {
            "id": f"batch_req_{ident}",
            "custom_id": custom_id,
            "response": None,
            "error": None,
        }
        fate = self._draw(body)
        if fate == "expired":
            line["error"] = {"code": "batch_expired", "message": EXPIRED_MESSAGE}
            return "expired", line
        if fate == "failed":
            error = {"message": "The server had an error processing your request.", "type": "server_error"}
            response = SimResponse(500, {"error": {**error, "param": None, "code": "server_error"}})
        else:
            response = await self.engine.chat(body, admit=_free, automatic_cache=False)
        line["response"] = {
            "status_code": response.status,
            "request_id": f"req_{ident}",
            "body": response.body,
        }
        return ("succeeded" if response.status == 200 else "failed"), line

    async def _anthropic_line(
        self, custom_id: str, params: JSON, live: frozenset[str]
    ) -> tuple[str, dict[str, Any]]:
        fate = self._draw(params)
        if fate == "expired":
            return "expired", {"custom_id": custom_id, "result": {"type": "expired"}}
        if fate == "failed":
            error = _anthropic_error(500, "api_error", "Internal server error").body
            return "failed", {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
        try:
            request = _Request.read(params)
        except BadBody as exc:
            error = _anthropic_error(400, "invalid_request_error", str(exc)).body
            return "failed", {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
        response = await self.engine.chat(request.chat_body(), admit=_free, automatic_cache=False)
        if response.status != 200:
            error = _translate_error(response).body
            return "failed", {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
        hit = request.cache_key in live
        if request.cache_key is not None:
            self.engine.anthropic_cache[request.cache_key] = self._clock() + request.cache_ttl
        usage = request.usage(int(response.body["usage"]["completion_tokens"]), hit=hit)
        message = _translate_message(response, request.model, usage).body
        return "succeeded", {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


def _read_openai_file(
    data: bytes, endpoint: str, shape: BatchShape
) -> tuple[list[tuple[str, JSON]], list[dict[str, Any]]]:
    """The lines of an input file, and the validation errors that fail the batch (OpenAI's checks,
    as the provider's ``shape`` varies them)."""
    lines: list[tuple[str, JSON]] = []
    errors: list[dict[str, Any]] = []
    models: set[str] = set()

    def error(code: str, message: str, line: int | None = None) -> None:
        errors.append({"code": code, "message": message, "param": None, "line": line})

    if len(data) > shape.max_bytes:
        error("file_too_large", f"the input file is larger than {shape.max_bytes} bytes")
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            error("invalid_json_line", "this line is not valid JSON", number)
            continue
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            error("missing_required_parameter", "custom_id is required", number)
            continue
        if shape.line_url and (line.get("method") != "POST" or line.get("url") != endpoint):
            error("mismatched_endpoint", f"url must be {endpoint} and method POST", number)
            continue
        body = line.get("body")
        if not isinstance(body, dict):
            error("missing_required_parameter", "body is required", number)
            continue
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            models.add(body["model"])
        lines.append((line["custom_id"], body))
    if len(lines) > OPENAI_MAX_LINES:
        error("too_many_requests", f"a batch holds at most {OPENAI_MAX_LINES} requests")
    if len({custom_id for custom_id, _ in lines}) != len(lines):
        error("duplicate_custom_id", "custom_id values must be unique within a batch")
    if len(models) > 1:
        error("model_mismatch", "every request of a batch must use the same model")
    return lines, errors


def _read_gemini_file(data: bytes) -> tuple[list[tuple[str, JSON]], str]:
    """A Gemini batch file's ``{"key", "request"}`` lines, and what is wrong with it ("" if nothing)."""
    lines: list[tuple[str, JSON]] = []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            return [], f"line {number} of the input file is not JSON"
        if not isinstance(line, dict) or not isinstance(line.get("key"), str):
            return [], f"line {number}: key is required"
        if not isinstance(line.get("request"), dict):
            return [], f"line {number}: request is required"
        lines.append((line["key"], line["request"]))
    if not lines:
        return [], "the input file holds no requests"
    return lines, ""


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> SimResponse:
    kind = "invalid_request_error"
    return SimResponse(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})


def _anthropic_error(status: int, kind: str, message: str) -> SimResponse:
    return SimResponse(status, {"type": "error", "error": {"type": kind, "message": message}})
