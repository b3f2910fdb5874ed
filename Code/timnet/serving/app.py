"""The HTTP API and the page of ``timnet serve`` (FastAPI on Starlette), for one loaded model.

Routes: ``GET /`` the page; ``POST /api/classify`` (multipart field ``file`` or the raw
audio as the body); ``GET /api/model`` the model card; ``GET /healthz``; ``GET /docs``
the OpenAPI page, with Swagger UI served from the ``swagger-ui-bundle`` package (no CDN).

Admission: at most ``workers + queue`` classify requests are inside the server at once
(reading, waiting or being scored); one more is answered 503 with Retry-After before
its body is read. Decoding and scoring run in a pool of ``workers`` threads. A body is
read in chunks and refused (413) as soon as it passes the limit, whether or not it
announced a Content-Length. The body stays in memory: no temporary file.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from timnet.config import ServeConfig
from timnet.serving import uploads
from timnet.serving.backend import Backend
from timnet.serving.uploads import UploadError
from timnet.version import __version__

STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = "/docs-assets"


class WindowOut(BaseModel):
    start: float
    end: float
    label: str | None
    silent: bool
    scores: dict[str, float] | None


class ClassifyOut(BaseModel):
    label: str
    scores: dict[str, float]
    score_kind: str
    windows: list[WindowOut]
    duration: float
    sample_rate: int
    model: dict[str, Any]
    seconds: float


class ErrorOut(BaseModel):
    error: str
    detail: str


ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (400, "empty upload, no samples, or a malformed form"),
    (413, "larger than the upload limit (refused while it arrives)"),
    (415, "not audio, or a format the server cannot decode"),
    (422, "silent, too long, or NaN samples"),
    (503, "the server is busy: retry after the Retry-After header's seconds"),
)}
AUDIO_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "audio/wav": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


class Service:
    """The loaded model, the worker pool and the admission count (touched only by the event loop)."""

    def __init__(self, backend: Backend, settings: ServeConfig) -> None:
        self.backend = backend
        self.settings = settings
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="timnet-serve")
        self.in_flight = 0
        self.served = 0
        self.refused_busy = 0

    def classify(self, body: bytes, content_type: str) -> dict[str, Any]:
        """Bytes of one request -> the response (runs in a worker thread)."""
        started = time.perf_counter()
        if content_type.lower().startswith("multipart/form-data"):
            body = uploads.extract_multipart(body, content_type)
        wave = uploads.decode(body, self.settings.max_duration)
        del body
        scored = self.backend.score_windows(wave.signal, wave.sample_rate)
        labels = self.backend.labels
        kept = scored.scores[~scored.silent]
        if not len(kept):
            raise UploadError(422, "silent", "every window of the recording is digital silence")
        mean = kept.mean(axis=0)
        windows = [{"start": round(float(s), 4), "end": round(float(e), 4), "silent": bool(quiet),
                    "label": None if quiet else labels[int(np.argmax(sc))],
                    "scores": None if quiet else {c: float(v) for c, v in zip(labels, sc)}}
                   for s, e, sc, quiet in zip(scored.starts, scored.ends, scored.scores, scored.silent)]
        card = self.backend.card()
        return {"label": labels[int(np.argmax(mean))], "scores": {c: float(v) for c, v in zip(labels, mean)},
                "score_kind": self.backend.score_kind, "windows": windows, "duration": round(wave.duration, 4),
                "sample_rate": wave.sample_rate,
                "model": {"file": card["file"], "corpus": card["corpus"], "head": card["head"]},
                "seconds": round(time.perf_counter() - started, 4)}


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise UploadError(400, "bad_length", f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise uploads.too_large(limit)
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise uploads.too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise UploadError(408, "timeout", f"the upload took longer than {timeout:g} s") from None
    except ClientDisconnect:
        raise UploadError(400, "disconnected", "the client went away before the upload was complete") from None
    return b"".join(chunks)


def create_app(backend: Backend, settings: ServeConfig) -> FastAPI:
    """The application for one loaded model."""
    import swagger_ui_bundle

    service = Service(backend, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's signature
        yield
        service.pool.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="TIM-Net speech emotion recognition", version=__version__, docs_url=None, redoc_url=None,
                  lifespan=lifespan, description="Classify the emotion of a recording with one trained TIM-Net model.")
    # Swagger UI 4 (the offline copy of swagger-ui-bundle) renders OpenAPI 3.0 documents only; ours
    # uses nothing of 3.1 that it cannot show.
    app.openapi_version = "3.0.3"
    app.state.service = service
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return error_response(exc.status, exc.kind, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http", str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); please report it")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title}: API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")

    @app.get("/healthz", summary="liveness and load")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": backend.card()["file"], "in_flight": service.in_flight,
                "capacity": settings.capacity, "served": service.served, "refused_busy": service.refused_busy}

    @app.get("/api/model", summary="the model card and the server's limits")
    async def model_card() -> dict[str, Any]:
        return {**backend.card(), "limits": {"max_upload_mb": settings.max_upload_mb,
                                             "max_duration": settings.max_duration,
                                             "workers": settings.workers, "queue": settings.queue}}

    @app.post("/api/classify", summary="the emotion of one recording", response_model=ClassifyOut,
              responses=ERRORS, openapi_extra=AUDIO_BODY)
    async def classify(request: Request) -> JSONResponse:
        """Send the audio as the multipart field ``file`` or as the raw body. The label is
        the mean score of the model-length windows (one centred window for a short
        recording); ``windows`` gives every window's scores."""
        if service.in_flight >= settings.capacity:
            service.refused_busy += 1
            return error_response(503, "busy", f"the server is busy ({settings.capacity} requests in progress); "
                                               f"retry in {settings.retry_after} s",
                                  {"Retry-After": str(settings.retry_after)})
        service.in_flight += 1
        try:
            body = await read_body(request, settings.max_upload_bytes, settings.upload_timeout)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(service.pool, service.classify, body,
                                                request.headers.get("content-type", ""))
            service.served += 1
            return JSONResponse(result)
        finally:
            service.in_flight -= 1

    return app
