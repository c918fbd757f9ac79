"""The FastAPI app: /health, /info, /predict, the task's own routes, the page at /, the API key, the body cap,
one-line JSON errors, and 503s while the queue is full or the server is stopping.

Everything a task differs by comes from its ServeSpec (tasks/base.py): the app builds /predict's request model
from the spec's fields (JSON rows) or reads multipart `files` of the spec's media types, runs `prepare` per
request, batches the items (batching.py) and answers with the spec's `answer`: the records of `quicklearn
predict --format json`. No route reads a path the client names: uploads are bytes, the page's files are the
package's own.

(No `from __future__ import annotations` here: FastAPI reads the routes' annotations, which name request models
built in create_app.)
"""

import hmac
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, create_model

from quicklearn._version import __version__
from quicklearn.core.errors import QuicklearnError
from quicklearn.serving.http.backend import Backend
from quicklearn.serving.http.batching import Batcher, Busy, Closed
from quicklearn.serving.http.settings import ServeSettings
from quicklearn.serving.http.uploads import UploadError, check_upload
from quicklearn.tasks.base import ServeField, ServeRoute, ServeSpec

__all__ = ["create_app", "Guard", "PAGE_DIR", "PUBLIC_PATHS"]

log = logging.getLogger("quicklearn")

PAGE_DIR = Path(__file__).resolve().parent / "page"
# what needs no key: the liveness check, the page's own files (it asks for the key), and the API's docs (their
# "Authorize" button takes the key for "Try it out"); everything that runs or describes the model needs it
PUBLIC_PATHS = ("/health", "/", "/favicon.ico", "/docs", "/docs/oauth2-redirect", "/openapi.json")
PUBLIC_PREFIXES = ("/page/", "/static-offline-docs/")


# ---- errors: one line of JSON ---------------------------------------------------------------------------------
def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}).encode()


async def send_error(send: Callable, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error straight from the ASGI layer (before the app has read the request)."""
    body = error_body(status, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def discard_body(receive: Callable, limit: int) -> None:
    """Read the rest of a request body without keeping it, at most `limit` bytes (then the connection closes)."""
    seen, more = 0, True
    while more and seen <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        seen += len(message.get("body", b""))
        more = message.get("more_body", False)


@dataclass
class GuardState:
    """What the guard knows: requests in flight (SIGTERM waits for them) and whether the server is stopping."""

    in_flight: int = 0
    draining: bool = False


class Guard:
    """ASGI middleware in front of every route: 503 while stopping, the API key, the body cap (the body is read
    here, at most `max_body` bytes, before the app parses any of it), and the count of requests in flight."""

    def __init__(self, app: Any, api_key: str | None, max_body: int, state: GuardState):
        self.app, self.api_key, self.max_body, self.state = app, api_key, max_body, state
        # An over-limit body is read on and thrown away (up to this much) before the 413 goes out: a server that
        # answers and closes while the client still sends makes the kernel reset the connection, and the client
        # then loses the answer (httpx: "peer closed connection without sending complete message body").
        self.drain_limit = max(4 * max_body, 64 * 1024 * 1024)

    def _public(self, path: str) -> bool:
        return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())  # type: ignore[union-attr]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.state.draining:
            await send_error(send, 503, "the server is stopping; retry on another instance or after it restarts.",
                             {"Retry-After": "5", "Connection": "close"})
            return
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        if self.api_key and not self._public(path) and not self._authorized(headers):
            why = "missing" if b"authorization" not in headers else "wrong"
            await send_error(send, 401, f"API key {why}: send it as the header 'Authorization: Bearer KEY' (the key "
                                        "the server was started with, --api-key or QUICKLEARN_API_KEY).",
                             {"WWW-Authenticate": "Bearer"})
            return
        self.state.in_flight += 1
        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                await discard_body(receive, self.drain_limit)
                await send_error(send, 413, f"the request body is {int(declared)} bytes, over the limit of "
                                            f"{self.max_body} (--max-body-mb); send fewer or smaller files.",
                                 {"Connection": "close"})
                return
            body, more = bytearray(), True
            while more:  # read it all here (chunked bodies too), counting, so the cap holds whatever the headers say
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body:
                    body = bytearray()
                    if more:
                        await discard_body(receive, self.drain_limit)
                    await send_error(send, 413, f"the request body is over the limit of {self.max_body} bytes "
                                                "(--max-body-mb); send fewer or smaller files.", {"Connection": "close"})
                    return
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.state.in_flight -= 1


# ---- request models from the spec's fields -------------------------------------------------------------------
_TYPES: dict[str, Any] = {
    "text": StrictStr,
    "string": StrictStr,
    "number": Optional[Union[StrictInt, StrictFloat]],  # null: a missing value
    "integer": StrictInt,
    "boolean": StrictBool,
    "category": Optional[Union[StrictStr, StrictInt, StrictFloat, StrictBool]],  # null: a missing value
    "id": Union[StrictInt, StrictStr],
}


def fields_model(name: str, fields: list[ServeField]) -> type[BaseModel]:
    """A pydantic model of one JSON object of `fields` (by their names, which need not be identifiers); unknown
    fields are refused."""
    spec: dict[str, Any] = {}
    for k, f in enumerate(fields):
        if f.type not in _TYPES:
            raise QuicklearnError(f"ServeField {f.name!r}: type {f.type!r} is not one of {sorted(_TYPES)}.")
        extra = {"examples": [f.example]} if f.example is not None else {}
        default = ... if f.required else f.default
        spec[f"f{k}"] = (_TYPES[f.type], Field(default, alias=f.name, description=f.help or None, **extra))
    return create_model(name, __config__=ConfigDict(extra="forbid", populate_by_name=False), **spec)


def _as_dict(obj: BaseModel) -> dict[str, Any]:
    return obj.model_dump(by_alias=True)


def validation_message(errors: list[dict[str, Any]], fields: dict[str, list[str]]) -> str:
    """pydantic's errors -> one line: the first one, where it is (rows[2].Age), and what the model reads."""
    if not errors:
        return "the request is not valid."
    errors = sorted(errors, key=lambda x: x.get("type") != "extra_forbidden")  # a misspelt field first: its cause
    e = errors[0]
    loc = [x for x in e.get("loc", ()) if x != "body"]
    where = "the body"
    if loc:
        where = str(loc[0]) + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc[1:])
    more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    name = loc[-1] if loc else None
    known = fields.get(str(loc[0]) if loc else "", [])
    reads = f"; the model reads {', '.join(map(str, known))}" if known else ""
    kind = e.get("type", "")
    if kind == "extra_forbidden":
        parent = where.rsplit(".", 1)[0] if len(loc) > 1 else "the body"
        return f"{parent}: unknown field {name!r}{reads}{more}."
    if kind == "missing":
        if loc and loc[0] == "files":
            return f"no files: send the images as multipart form field 'files'{more}."
        return f"{where}: field required{reads}{more}."
    if kind in ("json_invalid", "model_attributes_type", "dict_type", "model_type") and len(loc) <= 1:
        return f"{where}: send a JSON object such as {{\"rows\": [{{...}}]}}: {e.get('msg', '')}{more}."
    return f"{where}: {e.get('msg', 'not valid')}{more}."


# ---- the app ---------------------------------------------------------------------------------------------------
def _model_card(settings: ServeSettings, predictor: Any, spec: ServeSpec, backend: Backend) -> dict[str, Any]:
    folder = settings.model_dir
    metrics, trained = {}, None
    mfile = folder / "metrics.json"
    if mfile.is_file():
        try:
            metrics = json.loads(mfile.read_text(encoding="utf-8")).get("valid") or {}
        except (OSError, ValueError, AttributeError):
            metrics = {}
    stamp = mfile if mfile.is_file() else folder / "config.json"
    if stamp.is_file():
        trained = datetime.fromtimestamp(stamp.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {
        "task": predictor.task,
        "kind": predictor.kind,
        "classes": predictor.classes,
        "metrics": metrics,
        "trained": trained,
        "model": folder.name,
        "quicklearn_version": __version__,
        "trained_with": predictor.config.get("quicklearn_version"),
        "card": spec.card,
        "input": ({"files": list(spec.media_types)} if spec.files else {"rows": [asdict(f) for f in spec.fields]}),
        "routes": [{"path": r.path, "summary": r.summary, "fields": [asdict(f) for f in r.fields]} for r in spec.routes],
        "backend": backend.name,
        "max_batch": settings.max_batch,
        "max_wait_ms": settings.max_wait_ms,
        "auth": bool(settings.api_key),
    }


def _new_app(title: str) -> Any:
    """FastAPI with Swagger UI's files served by the package (fastapi-offline), so /docs works offline; plain
    FastAPI (/docs from a CDN) when fastapi-offline is missing."""
    try:
        from fastapi_offline import FastAPIOffline

        return FastAPIOffline(title=title, version=__version__, redoc_url=None)
    except ImportError:
        from fastapi import FastAPI

        return FastAPI(title=title, version=__version__, redoc_url=None)


def default_answer(predictor: Any) -> Callable[[list[dict[str, Any]], Any], list[dict[str, Any]]]:
    """The records with the prediction columns appended (Predictor.append_predictions), as JSON records."""

    def answer(records: list[dict[str, Any]], outputs: Any) -> list[dict[str, Any]]:
        frame = predictor.append_predictions(pd.DataFrame.from_records(records), outputs, "the request")
        return json.loads(frame.to_json(orient="records"))

    return answer


def create_app(settings: ServeSettings, predictor: Any, spec: ServeSpec, backend: Backend) -> Any:
    """The ASGI app serving `predictor` as `spec` says, batches run by `backend`; wrapped in the Guard. The
    FastAPI app is `app.fastapi`, the batcher `app.batcher`, the guard's state `app.guard`."""
    from contextlib import asynccontextmanager

    from fastapi import Body, Depends, File, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.security import HTTPBearer
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from quicklearn.core.errors import ConfigError, DataError

    batcher = Batcher(backend.run, settings.max_batch, settings.max_wait_ms, settings.max_queue)
    answer = spec.answer or default_answer(predictor)
    card = _model_card(settings, predictor, spec, backend)
    known: dict[str, list[str]] = {"rows": [f.name for f in spec.fields], "files": []}

    @asynccontextmanager
    async def lifespan(_app: Any):
        batcher.start()
        yield
        await batcher.stop()

    app = _new_app(f"quicklearn: {predictor.task} model {settings.model_dir.name}")
    app.router.lifespan_context = lifespan
    bearer = HTTPBearer(auto_error=False, description="The server's API key (when it was started with one).")
    keyed = [Depends(bearer)] if settings.api_key else []

    # ---- errors ------------------------------------------------------------------------------------------
    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, e: RequestValidationError) -> JSONResponse:
        return error(422, validation_message(list(e.errors()), known))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, e: StarletteHTTPException) -> JSONResponse:
        message = e.detail if isinstance(e.detail, str) else json.dumps(e.detail)
        if e.status_code == 404:
            message = "no such route; the API is /health, /info, /predict" + "".join(f", {r.path}" for r in spec.routes)
        elif e.status_code == 405:
            message = f"method not allowed here ({message})"
        return error(e.status_code, message, getattr(e, "headers", None))

    @app.exception_handler(UploadError)
    async def _upload(_r: Request, e: UploadError) -> JSONResponse:
        return error(e.status, e.message)

    @app.exception_handler(Busy)
    async def _busy(_r: Request, e: Busy) -> JSONResponse:
        return error(503, f"the server is busy ({settings.max_queue} requests are waiting, --max-queue); retry in "
                          f"{e.retry_after} s.", {"Retry-After": str(e.retry_after)})

    @app.exception_handler(Closed)
    async def _closed(_r: Request, e: Closed) -> JSONResponse:
        return error(503, "the server is stopping.", {"Retry-After": "5"})

    @app.exception_handler(DataError)
    async def _data(_r: Request, e: DataError) -> JSONResponse:
        return error(400, str(e).splitlines()[0] if str(e) else "the input cannot be read.")

    @app.exception_handler(ConfigError)
    async def _config(_r: Request, e: ConfigError) -> JSONResponse:
        return error(400, str(e).splitlines()[0] if str(e) else "the request is not valid.")

    @app.exception_handler(Exception)
    async def _crash(_r: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error in a request")
        return error(500, f"internal error ({type(e).__name__}); the server log has the details.")

    # ---- routes ------------------------------------------------------------------------------------------
    @app.get("/health", summary="Liveness: 200 while the server takes requests (no key needed)")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "task": predictor.task, "waiting": batcher.waiting}

    @app.get("/info", summary="The model card: task, classes, input, validation metrics, versions",
             dependencies=keyed)
    async def info() -> dict[str, Any]:
        return {**card, "batches": asdict(batcher.stats)}

    async def run_items(prepared: Any) -> list[dict[str, Any]]:
        batcher.coming += 1  # the batcher may wait for this request's items while they are decoded
        try:
            items, records = await run_in_threadpool(spec.prepare, prepared)
        finally:
            batcher.coming -= 1  # submit (below) queues them before the event loop runs anything else
        if not items:
            raise DataError("nothing to predict on: send at least one item.")
        outputs = await batcher.submit(items)
        return await run_in_threadpool(answer, records, outputs)

    if spec.files:
        kinds = ", ".join(spec.media_types)

        @app.post("/predict", summary=f"Predict on images: multipart form field 'files', one or many ({kinds})",
                  dependencies=keyed)
        async def predict_files(files: list[UploadFile] = File(..., description=f"one or many images ({kinds})")
                                ) -> JSONResponse:
            if len(files) > settings.max_files:
                raise DataError(f"{len(files)} files in one request, over the limit of {settings.max_files} "
                                "(--max-files); send them in several requests.")
            uploads = []
            for k, f in enumerate(files):
                data = await f.read()
                name = Path(f.filename or f"file{k}").name  # a label for the answer only; never opened
                uploads.append(check_upload(name, f.content_type, data, spec.media_types, settings.max_pixels))
            return JSONResponse(await run_items(uploads))
    else:
        Row = fields_model("Row", spec.fields)
        Rows = create_model("PredictRequest", __config__=ConfigDict(extra="forbid"),
                            rows=(list[Row], Field(..., min_length=1, max_length=settings.max_files,  # type: ignore[valid-type]
                                                   description="one object per item, with the model's fields")))

        @app.post("/predict", summary="Predict on JSON rows: {\"rows\": [{field: value, ...}, ...]}",
                  dependencies=keyed)
        async def predict_rows(body: Rows = Body(...)) -> JSONResponse:  # type: ignore[valid-type]
            return JSONResponse(await run_items([_as_dict(r) for r in body.rows]))  # type: ignore[attr-defined]

    for route in spec.routes:
        _add_route(app, route, keyed, known)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    app.mount("/page", StaticFiles(directory=str(PAGE_DIR)), name="page")

    state = GuardState()
    guarded = Guard(app, settings.api_key, settings.max_body_bytes, state)
    guarded.fastapi, guarded.batcher, guarded.guard = app, batcher, state  # type: ignore[attr-defined]
    return guarded


def _add_route(app: Any, route: ServeRoute, keyed: list[Any], known: dict[str, list[str]]) -> None:
    """A task's own JSON route (collab's /recommend): its body validated by its fields, answered by its handler
    in a worker thread (not batched: one call does the whole work)."""
    from fastapi import Body
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    model = fields_model("".join(p.capitalize() for p in route.path.strip("/").split("/")) + "Request", route.fields)
    known[route.path.strip("/")] = [f.name for f in route.fields]

    async def handler(body: model = Body(...)) -> JSONResponse:  # type: ignore[valid-type]
        result = await run_in_threadpool(route.handle, _as_dict(body))
        return JSONResponse(result)

    app.post(route.path, summary=route.summary, dependencies=keyed)(handler)
