"""The studio's FastAPI application: the page, the JSON API and the progress stream.

Routes (JSON; images are base64 PNGs that carry their settings in a text chunk):
  GET  /                          the page (static/index.html)
  GET  /api/runs                  the served runs: name, family, image_shape, num_classes, text, ...
  POST /api/generate | /api/img2img | /api/inpaint | /api/interpolate
                                  run one job through the queue and answer with its images
  POST /api/jobs                  {kind, ...} -> 202 {id, position}: queue a job, stream it below
  GET  /api/jobs/{id}             its state;  GET /api/jobs/{id}/events: server-sent events
                                  (queued, progress {step, total, previews}, done | cancelled | failed)
  POST /api/jobs/{id}/cancel      a running job stops at its next step
  GET  /api/history               finished jobs, newest first
  POST /api/png-info              the settings a studio PNG carries
  GET  /docs                      OpenAPI documentation (FastAPI's)
"""
from __future__ import annotations

import asyncio
import json
import pathlib
import secrets

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from . import images as pimg
from .jobs import FINISHED, QUEUED, QueueFull, Worker
from .runs import RequestError
from .schemas import AnyJob, Generate, Img2Img, Inpaint, Interpolate, PngInfo

STATIC = pathlib.Path(__file__).parent / "static"
MAX_BODY = 16 * 1024 * 1024           # an image and a mask of 4 MB each, base64, with room
TOKEN_COOKIE = "pixelforge_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _hostname(host_header: str) -> str:
    """'127.0.0.1:7860' -> '127.0.0.1', '[::1]:7860' -> '[::1]'."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0]


class _BodyTooLarge(HTTPException):
    # an HTTPException, so FastAPI's body parsing passes it on as a 413 (not "error parsing the body")
    def __init__(self, limit):
        super().__init__(413, f"body: larger than {limit // 2**20} MB")


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 whether it declares its
    length or streams chunks (FastAPI would otherwise read any body whole into memory)."""

    def __init__(self, app, limit=MAX_BODY):
        self.app, self.limit = app, limit

    async def _refuse(self, scope, receive, send):
        await JSONResponse({"detail": _BodyTooLarge(self.limit).detail}, status_code=413)(scope, receive, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(scope, receive, send)
        received, started = 0, False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)


def create_app(runs: dict, *, token: str | None = None, queue_size: int = 16, keep: int = 100,
               allowed_hosts=None, stream_interval: float = 0.05) -> FastAPI:
    """The studio app serving ``runs`` (name -> runs.Run).

    token: when set, every request must carry it (``Authorization: Bearer T``, ``?token=T`` or
    the cookie the page gets when opened with ``?token=T``). allowed_hosts: the Host headers
    accepted (None: any; the CLI passes the loopback names when bound to loopback, so a web page
    on another origin cannot reach the studio through DNS rebinding)."""
    worker = Worker(queue_size=queue_size, keep=keep)
    app = FastAPI(title="pixelforge studio", version="1",
                  description="Generate, sketch, mask, interpolate and watch images form with pixelforge's models.")
    app.router.on_shutdown.append(worker.stop)
    app.add_middleware(BodyLimit)

    # ------------------------------------------------------------------ every request
    @app.middleware("http")
    async def guard(request: Request, call_next):
        if allowed_hosts is not None:
            host = _hostname(request.headers.get("host", ""))
            if host not in allowed_hosts:
                return JSONResponse({"detail": f"host: {host!r} is not served here"}, status_code=400)
        set_cookie = False
        if token is not None:
            auth = request.headers.get("authorization", "")
            given = [auth[7:] if auth.lower().startswith("bearer ") else None,
                     request.query_params.get("token"), request.cookies.get(TOKEN_COOKIE)]
            if not any(g is not None and secrets.compare_digest(g.encode(), token.encode()) for g in given):
                return JSONResponse({"detail": "token: missing or wrong (send Authorization: Bearer <token>)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            set_cookie = request.query_params.get("token") is not None
        response = await call_next(request)
        if set_cookie:     # the page's own script and style loads then carry it
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(RequestError)
    @app.exception_handler(pimg.UploadError)
    async def bad_request(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(QueueFull)
    async def queue_full(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        # FastAPI's 422, with the errors made JSON-safe (a rejected NaN or bytes would not be)
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    # ------------------------------------------------------------------ helpers
    def run_of(name):
        if name not in runs:
            raise RequestError(f"run: {name!r} is not served (served: {', '.join(runs)})", 404)
        return runs[name]

    def submit(req) -> "Job":  # noqa: F821
        fields = req.model_dump()
        kind = fields.pop("kind")
        run = run_of(fields["run"])
        settings = run.check(kind, fields)
        inputs, hashes = run.decode_inputs(fields)
        settings.update(hashes)
        return worker.submit(kind, run, settings, inputs)

    def job_of(jid):
        job = worker.jobs.get(jid)
        if job is None:
            raise RequestError(f"id: no job {jid!r}", 404)
        return job

    async def answer(req):
        job = submit(req)
        while not job.finished.is_set():
            await asyncio.sleep(0.01)
        if job.status == "failed":
            return JSONResponse({"detail": job.detail, "id": job.id}, status_code=job.error_status or 500)
        return job.result()

    # ------------------------------------------------------------------ routes
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/runs", summary="The served runs")
    async def list_runs():
        return [r.describe() for r in runs.values()]

    @app.post("/api/generate", summary="Sample n images (waits for the result)")
    async def generate(req: Generate):
        return await answer(req)

    @app.post("/api/img2img", summary="Edit an image from a sketch or photo (waits for the result)")
    async def img2img(req: Img2Img):
        return await answer(req)

    @app.post("/api/inpaint", summary="Regenerate the masked region (waits for the result)")
    async def inpaint(req: Inpaint):
        return await answer(req)

    @app.post("/api/interpolate", summary="Frames between two seeds (waits for the result)")
    async def interpolate(req: Interpolate):
        return await answer(req)

    @app.post("/api/jobs", status_code=202, summary="Queue a job; stream it from /api/jobs/{id}/events")
    async def queue_job(req: AnyJob = Body(discriminator="kind")):
        job = submit(req)
        return {"id": job.id, "position": worker.position(job), "settings": job.settings}

    @app.get("/api/jobs/{jid}", summary="A job's state (images once finished)")
    async def get_job(jid: str):
        return job_of(jid).result()

    @app.post("/api/jobs/{jid}/cancel", summary="Cancel a queued or running job")
    async def cancel_job(jid: str):
        job = job_of(jid)
        worker.cancel(job)
        return {"id": job.id, "status": job.status, "settings": job.settings}

    @app.get("/api/jobs/{jid}/events", summary="Server-sent events: queued, progress, done|cancelled|failed")
    async def job_events(jid: str):
        job = job_of(jid)

        def event(name, payload):
            return f"event: {name}\ndata: {json.dumps(payload)}\n\n"

        async def stream():
            seen, position = -1, None
            while True:
                version, status, step, total, preview = job.snapshot()
                if status == QUEUED:
                    p = worker.position(job)
                    if p != position:
                        position = p
                        yield event("queued", {"position": p})
                elif version != seen and preview is not None and status not in FINISHED:
                    # only the newest preview is encoded: a slow client skips frames, never queues them
                    previews = [pimg.png_b64(im) for im in preview]
                    yield event("progress", {"step": step, "total": total, "previews": previews})
                seen = version
                if status in FINISHED:
                    yield event(status, job.result())
                    return
                await asyncio.sleep(stream_interval)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/history", summary="Finished jobs, newest first")
    async def history(limit: int = 100):
        if not 1 <= limit <= 1000:
            raise RequestError("limit: must be in [1, 1000]")
        return worker.history(limit)

    @app.post("/api/png-info", summary="The settings a studio PNG carries")
    async def png_info(req: PngInfo):
        settings = pimg.png_settings(req.image)
        if settings is None:
            raise RequestError("image: this PNG carries no pixelforge settings")
        return {"settings": settings}

    return app
