"""FastAPI app: one static page and ``/api/v1`` (inpaint, health, model card).

A request goes: body read into memory under the size and time limits → headers checked (format,
pixel count) → a place in the inference queue (or 503) → decode, fill and encode on the single
inference thread. Pixels are decoded only when a request's turn comes, so the decoded images
in memory are one request's, however many wait; after a large one the heap is given back to the
system. Uploads are decoded and results encoded in memory; nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import io
import logging
import math
import mimetypes
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image
from python_multipart import create_form_parser
from python_multipart.exceptions import FormParserError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from deepfill.blending import BLENDS, Blend
from deepfill.config import IMAGE_FORMATS
from deepfill.errors import InputError, NotAnImageError, SizeMismatchError, TooLargeError
from deepfill.inpainter import Inpainter
from deepfill.processing import (
    DEFAULT_JPEG_QUALITY,
    DEFAULT_MAX_PIXELS,
    Picture,
    mask_from_image,
    open_image,
    picture_from_image,
    save_image,
)
from deepfill.runtime import release_freed_memory
from deepfill.server.schemas import Defaults, ErrorBody, Health, Limits, ModelCard, QueueState

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_QUEUE_SIZE = 4
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_UPLOAD_TIMEOUT = 60.0
MAX_UPLOADS_PER_PLACE = 4
# After a job with at least this many pixels, freed memory is handed back to the system.
TRIM_AFTER_PIXELS = 4_000_000
MIB = 1024 * 1024
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "bad form, corrupt image, or mask size differs from the image"},
    413: {"model": ErrorBody, "description": "request body or pixel count above the server's limits"},
    403: {"model": ErrorBody, "description": "a post from another site's page (deepfill serve --allowed-origins)"},
    408: {"model": ErrorBody, "description": "the request body took longer than the server's upload timeout"},
    415: {"model": ErrorBody, "description": "not multipart/form-data, or an upload that is not an image"},
    422: {"model": ErrorBody, "description": "a query parameter that is not a boolean"},
    503: {"model": ErrorBody, "description": "inference queue or upload slots full; retry after Retry-After seconds"},
}


class ApiError(Exception):
    """An error answered as ``{"error": code, "message": ...}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class QueueFullError(Exception):
    """The inference queue has no room; ``retry_after`` is a guess in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the inference queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class InferenceQueue:
    """A bounded queue in front of one inference thread: one job runs, at most ``size`` wait.

    A request :meth:`reserve`\\ s its place once its body has arrived; the place is freed by
    :meth:`release` or, once handed to :meth:`submit`, when the job ends.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"queue size must be >= 0, got {size}")
        self.capacity = size + 1
        self._pending = 0
        self._mean_seconds = 2.0  # moving average of a job's run time, for Retry-After
        self._running_since: float | None = None
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepfill-inference")

    @property
    def pending(self) -> int:
        return self._pending

    def retry_after(self) -> int:
        """Seconds until the running job should end and free a place: the typical job time less
        what the running one has already taken."""
        started = self._running_since
        remaining = self._mean_seconds - (time.perf_counter() - started if started is not None else 0.0)
        return max(1, min(120, math.ceil(remaining)))

    def reserve(self) -> None:
        """Take a place or raise :class:`QueueFullError`; never blocks."""
        with self._lock:
            if self._pending >= self.capacity:
                raise QueueFullError(self.retry_after())
            self._pending += 1

    def release(self) -> None:
        with self._lock:
            self._pending -= 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        """Run ``fn(*args)`` on the inference thread; the caller's place is released when it ends."""

        def timed() -> Any:
            start = self._running_since = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self._running_since = None
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (time.perf_counter() - start)

        future = self._executor.submit(timed)
        future.add_done_callback(lambda _: self.release())
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass
class _Upload:
    image: bytes
    mask: bytes
    resize_mask: bool
    attention: bool
    blend: str | None  # None: the server's default
    quality: int  # of JPEG results
    pixels: int = 0  # of the image and the mask, from their headers


async def _read_form(request: Request, max_bytes: int) -> dict[str, bytes]:
    """Parse a multipart body in memory, refusing it (413) as soon as it passes ``max_bytes``."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, "not_multipart", "send multipart/form-data with the fields 'image' and 'mask'")
    too_large = ApiError(413, "upload_too_large",
                         f"the upload is larger than this server's limit of {max_bytes / MIB:g} MiB "
                         "(deepfill serve --max-upload-mb)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    parts: dict[str, bytes] = {}

    def on_field(field: Any) -> None:
        parts[(field.field_name or b"").decode("latin-1")] = field.value or b""

    def on_file(file: Any) -> None:
        file.file_object.seek(0)
        parts[(file.field_name or b"").decode("latin-1")] = file.file_object.read()

    try:
        # Files stay in memory: the in-memory limit is above the body limit.
        parser = create_form_parser({"Content-Type": content_type.encode("latin-1")}, on_field, on_file,
                                    config={"MAX_MEMORY_FILE_SIZE": max_bytes + 1})
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise too_large
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, "bad_form", f"malformed multipart body: {exc}") from None
    return parts


def _flag(value: bytes | str | None, name: str, default: bool) -> bool:
    if value is None:
        return default
    word = (value.decode("latin-1") if isinstance(value, bytes) else value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ApiError(400, "bad_form", f"field {name!r} must be true or false, got {word[:20]!r}")


def _quality(value: bytes | int) -> int:
    word = value.decode("latin-1").strip() if isinstance(value, bytes) else str(value)
    if not word.isdigit() or not 1 <= int(word) <= 100:
        raise ApiError(400, "bad_form", f"field 'quality' must be a whole number from 1 to 100, got {word[:20]!r}")
    return int(word)


def _upload_from_form(parts: dict[str, bytes], attention: bool, resize_mask: bool, blend: str | None,
                      quality: int) -> _Upload:
    missing = [name for name in ("image", "mask") if not parts.get(name)]
    if missing:
        raise ApiError(400, "missing_field", f"the form lacks {' and '.join(repr(m) for m in missing)} "
                       "(multipart fields 'image' and 'mask', white mask pixels = hole)")
    if parts.get("blend"):
        blend = parts["blend"].decode("latin-1").strip().lower()
    if blend is not None and blend not in BLENDS:
        raise ApiError(400, "bad_form", f"field 'blend' must be one of {', '.join(BLENDS)}, got {blend[:20]!r}")
    return _Upload(parts["image"], parts["mask"], _flag(parts.get("resize_mask"), "resize_mask", resize_mask),
                   _flag(parts.get("attention"), "attention", attention), blend,
                   _quality(parts["quality"] if parts.get("quality") else quality))


def _open_upload(data: bytes, max_pixels: int, what: str, decode: bool = True) -> Image.Image:
    """Decode an uploaded image in memory (or only its header), mapping errors to HTTP statuses."""
    try:
        return open_image(io.BytesIO(data), max_pixels, f"the {what}", decode)
    except NotAnImageError:
        raise ApiError(415, "not_an_image",
                       f"the {what} is not an image in a supported format ({', '.join(IMAGE_FORMATS)})") from None
    except TooLargeError as exc:
        raise ApiError(413, "too_many_pixels", f"{exc} of this server (deepfill serve --max-pixels)") from None
    except InputError as exc:
        raise ApiError(400, "corrupt_image", str(exc)) from None


def _encode(image: Image.Image, format_name: str, quality: int) -> tuple[bytes, str]:
    """Encode in ``format_name``, or PNG when Pillow cannot write that format or this mode in it.

    Returns (bytes, media type).
    """
    if format_name == "MPO":
        format_name = "JPEG"
    buffer = io.BytesIO()
    try:
        if format_name not in Image.SAVE:
            raise KeyError(format_name)
        save_image(image, buffer, format_name, quality=quality)
    except (OSError, ValueError, KeyError) as exc:  # e.g. RGBA into PPM
        log.info("cannot write %s as %s (%s); answering PNG", image.mode, format_name, exc)
        format_name, buffer = "PNG", io.BytesIO()
        save_image(image, buffer, format_name)
    return buffer.getvalue(), Image.MIME.get(format_name, "application/octet-stream")


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=code, message=message).model_dump(), status_code=status, headers=headers)


def create_app(
    inpainter: Inpainter,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    allowed_origins: Sequence[str] = (),
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
) -> FastAPI:
    """The web app around an already loaded ``inpainter`` (the model is loaded once, by the caller).

    Args:
        max_upload_mb: largest request body in MiB (image + mask); larger ones get 413.
        max_pixels: largest width x height of the image and of the mask; larger ones get 413.
        queue_size: requests that may wait behind the running one; more get 503 with Retry-After.
        allowed_hosts: host names the server answers for (the Host header); ``"*"`` for any.
        allowed_origins: other sites (``scheme://host[:port]``) whose pages may post here.
        upload_timeout: seconds a request body may take to arrive; slower ones get 408. At most
            ``MAX_UPLOADS_PER_PLACE`` times the queue's places are received at once.
    """
    max_bytes = int(max_upload_mb * MIB)
    queue = InferenceQueue(queue_size)
    uploads = asyncio.Semaphore(MAX_UPLOADS_PER_PLACE * queue.capacity)
    hosts = {h.lower().strip("[]") for h in allowed_hosts}
    origins = set(allowed_origins)
    card = dict(inpainter.card)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        queue.shutdown()

    # /docs is Swagger UI served from the installed package: FastAPI's own loads it from a CDN.
    app = FastAPIOffline(
        title="deepfill",
        version="1",
        description=(
            "DeepFill v1 image inpainting (generative inpainting with contextual attention). "
            "POST an image and a mask (white = hole) to /api/v1/inpaint; the filled image comes back in "
            "the input's format, every pixel outside the hole unchanged (exactly so for lossless formats)."
        ),
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.queue = queue
    app.state.inpainter = inpainter

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(QueueFullError)
    async def queue_full(_: Request, exc: QueueFullError) -> JSONResponse:
        return _error_response(503, "busy", f"{exc} (Retry-After)", {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _error_response(422, "bad_request", problems)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")  # the details go to the log, never to the client
        return _error_response(500, "internal_error", "the server failed on this request; its log has the details")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next: Callable) -> Response:
        """Refuse foreign Host headers (DNS rebinding) and cross-site requests that change state:
        a page on another site could otherwise make its visitors' browsers post here."""
        host = request.headers.get("host", "")
        name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if "*" not in hosts and name.lower() not in hosts:
            return _error_response(400, "bad_host", f"this server does not answer for host {name[:60]!r} "
                                   "(deepfill serve --allowed-hosts)")
        origin = request.headers.get("origin")
        if (origin is not None and request.method not in ("GET", "HEAD", "OPTIONS")
                and origin not in (f"http://{host}", f"https://{host}") and origin not in origins):
            return _error_response(403, "cross_origin", f"requests from {origin[:80]!r} are not accepted "
                                   "(deepfill serve --allowed-origins)")
        return await call_next(request)

    def check_headers(upload: _Upload) -> None:
        """Refuse what the headers already show (format, pixel count) before the queue; notes the size."""
        for data, what in ((upload.image, "image"), (upload.mask, "mask")):
            width, height = _open_upload(data, max_pixels, what, decode=False).size
            upload.pixels += width * height

    def decode(upload: _Upload) -> tuple[Picture, np.ndarray, str]:
        """The picture, the hole (bool [H, W], True = hole) and the input's Pillow format name."""
        image = _open_upload(upload.image, max_pixels, "image")
        format_name = image.format or "PNG"
        picture = picture_from_image(image)
        del image
        try:
            hole = mask_from_image(_open_upload(upload.mask, max_pixels, "mask"), picture.size, upload.resize_mask)
        except SizeMismatchError as exc:
            raise ApiError(400, "size_mismatch", f"{exc} (send resize_mask=true to resize it)") from None
        if hole.all():
            raise ApiError(400, "no_known_pixels", "the mask covers the whole image: there are no known pixels "
                           "to fill from (paint only the part to replace)")
        return picture, hole, format_name

    def fill(upload: _Upload) -> tuple[bytes, str]:
        picture, hole, format_name = decode(upload)
        filled, attention = inpainter.inpaint_picture(picture, hole, return_attention=upload.attention,
                                                      blend=upload.blend)
        del picture, hole
        image, format_name = (attention, "PNG") if upload.attention else (filled.to_image(), format_name)
        del filled, attention
        return _encode(image, format_name, upload.quality)

    def run_job(upload: _Upload) -> tuple[bytes, str, float]:
        """On the inference thread: everything decoded for the job lives only inside ``fill``."""
        start = time.perf_counter()
        try:
            data, media_type = fill(upload)
        finally:
            if upload.pixels >= TRIM_AFTER_PIXELS:
                release_freed_memory()
        return data, media_type, time.perf_counter() - start

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/v1/health", response_model=Health, tags=["api"])
    async def health() -> Health:
        """Liveness, the model in use, the queue's state and the upload limits."""
        return Health(
            status="ok",
            model=str(card.get("name", "deepfill-v1")),
            trained=inpainter.is_trained,
            device=str(inpainter.device),
            queue=QueueState(capacity=queue.capacity, pending=queue.pending),
            limits=Limits(max_upload_bytes=max_bytes, max_pixels=max_pixels),
            defaults=Defaults(blend=inpainter.blend, jpeg_quality=DEFAULT_JPEG_QUALITY),
        )

    @app.get("/api/v1/model", response_model=ModelCard, response_model_exclude_unset=True, tags=["api"])
    async def model() -> dict[str, Any]:
        """The model card of the weights in use (JSON shipped beside the .safetensors)."""
        return card

    @app.post(
        "/api/v1/inpaint",
        tags=["api"],
        response_class=Response,
        responses={
            200: {"description": "the filled image, in the input's format (PNG for the attention map)",
                  "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/tiff": {}}},
            **ERROR_RESPONSES,
        },
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["image", "mask"],
            "properties": {
                "image": {"type": "string", "format": "binary", "description": f"the photo ({', '.join(IMAGE_FORMATS)})"},
                "mask": {"type": "string", "format": "binary",
                         "description": "white (> 127) = hole; same size as the image unless resize_mask"},
                "resize_mask": {"type": "boolean", "default": False,
                                "description": "resize a mask of another size (nearest) instead of refusing it"},
                "attention": {"type": "boolean", "default": False,
                              "description": "return the colour-coded attention map (PNG) instead of the result"},
                "blend": {"type": "string", "enum": list(BLENDS),
                          "description": "calibrated: gradient-domain compositing (no seam), the network's detail "
                                         "weighted by the model's reliability; poisson: the same with all of the "
                                         "detail; none: the prediction pasted as it is (default: the server's, "
                                         "deepfill serve --blend)"},
                "quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": DEFAULT_JPEG_QUALITY,
                            "description": "JPEG quality of the result when the image is a JPEG (1-100)"},
            },
        }}}}},
    )
    async def inpaint(
        request: Request,
        attention: bool = Query(False, description="return the attention map (PNG) instead of the filled image"),
        resize_mask: bool = Query(False, description="resize a mask whose size differs from the image"),
        blend: Blend | None = Query(
            None, description="calibrated, poisson or none (default: the server's)"),
        quality: int = Query(DEFAULT_JPEG_QUALITY, description="JPEG quality of the result (1-100)"),
    ) -> Response:
        """Fill the white pixels of ``mask`` in ``image``. Form fields or query parameters set the options."""
        # The queue place is taken once the body is in: slow uploads do not hold it. Bodies being
        # received are bounded in number and in time instead.
        if uploads.locked():
            raise ApiError(503, "busy", "too many uploads in progress (Retry-After)",
                           {"Retry-After": str(queue.retry_after())})
        async with uploads:
            try:
                parts = await asyncio.wait_for(_read_form(request, max_bytes), upload_timeout)
            except asyncio.TimeoutError:
                raise ApiError(408, "upload_too_slow", f"the upload took longer than {upload_timeout:g} s "
                               "(deepfill serve --upload-timeout)") from None
            except ClientDisconnect:  # nobody to answer; not a server failure worth a traceback
                raise ApiError(400, "client_disconnected", "the client closed the connection mid-upload") from None
        upload = _upload_from_form(parts, attention, resize_mask, blend, _quality(quality))
        del parts
        await run_in_threadpool(check_headers, upload)
        queue.reserve()
        try:
            future = queue.submit(run_job, upload)
        except BaseException:  # the executor is shutting down: give the place back
            queue.release()
            raise
        data, media_type, seconds = await asyncio.wrap_future(future)
        extension = mimetypes.guess_extension(media_type) or ".png"
        name = "attention.png" if upload.attention else f"inpainted{extension}"
        return Response(data, media_type=media_type, headers={
            "Content-Disposition": f'inline; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Deepfill-Trained": str(inpainter.is_trained).lower(),
            "X-Deepfill-Seconds": f"{seconds:.3f}",
        })

    return app
