"""``deepfill serve``: the web page and the REST API on one port (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path

from deepfill.cli import warn_if_untrained
from deepfill.config import DEFAULT_MAX_PIXELS
from deepfill.errors import DeepfillError

log = logging.getLogger("deepfill")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the web app (paint a mask, get the fill) and the REST API",
        description=(
            "Serve the inpainting page at http://HOST:PORT/ and the API under /api/v1 "
            "(POST /api/v1/inpaint, GET /api/v1/health, GET /api/v1/model; OpenAPI at /openapi.json and /docs). "
            "The model is loaded once; requests beyond the queue get 503 with Retry-After."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--weights", type=Path, help="generator .safetensors (default: the bundled model)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="inference precision (default: float32; bfloat16 is ~2x faster on CPUs with AVX-512 or AMX and on GPUs, emulated and very slow on other CPUs)")
    p.add_argument("--blend", default="calibrated", choices=["calibrated", "poisson", "none"],
                   help="how the fill meets the known pixels: calibrated (default; gradient-domain compositing, no "
                        "seam or colour shift, the network's detail weighted by how far the model is reliable, "
                        "smoother deep inside large holes), poisson (the same with all of the network's detail: "
                        "sharper, with its artefacts) or none (the prediction pasted as it is)")
    p.add_argument("--max-size", type=int, default=1024,
                   help="images up to this long side run whole; larger ones are filled region by region (default: 1024)")
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest request body (image + mask) in MiB; larger gets 413 (default: 20)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest image or mask in pixels; larger gets 413 (default: {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--queue-size", type=int, default=4,
                   help="requests that may wait behind the running one; more get 503 (default: 4)")
    p.add_argument("--upload-timeout", type=float, default=60.0,
                   help="seconds a request body may take to arrive; slower uploads get 408 (default: 60)")
    p.add_argument("--allowed-hosts", default="",
                   help="comma-separated host names the server answers for besides 127.0.0.1, localhost, ::1 "
                        "and --host (the Host header; guards against DNS rebinding); '*' for any")
    p.add_argument("--allowed-origins", default="",
                   help="comma-separated sites (e.g. https://example.org) whose pages may post to this server; "
                        "by default only its own page may")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from deepfill.server import create_app
        from deepfill.server.app import LOOPBACK_HOSTS
    except ModuleNotFoundError as exc:
        raise DeepfillError(f"deepfill serve needs the 'serve' extra ({exc.name} is missing): "
                            "pip install 'deepfill[serve]'") from None
    from deepfill.inpainter import Inpainter

    if args.queue_size < 0 or args.max_upload_mb <= 0 or args.max_pixels <= 0 or args.upload_timeout <= 0:
        raise DeepfillError("--queue-size must be >= 0, --max-upload-mb, --max-pixels and --upload-timeout > 0")
    inpainter = Inpainter.from_pretrained(args.weights, device=args.device, dtype=args.dtype, max_size=args.max_size,
                                          blend=args.blend)
    warn_if_untrained(inpainter)
    hosts = [*LOOPBACK_HOSTS, args.host, *(h.strip() for h in args.allowed_hosts.split(",") if h.strip())]
    origins = [o.strip().rstrip("/") for o in args.allowed_origins.split(",") if o.strip()]
    app = create_app(inpainter, max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels,
                     queue_size=args.queue_size, allowed_hosts=hosts, allowed_origins=origins,
                     upload_timeout=args.upload_timeout)
    if not _is_loopback(args.host):
        log.warning("warning: listening on %s makes the server reachable from other machines; "
                    "it has no authentication", args.host)
        if not args.allowed_hosts:
            log.warning("note: it answers only requests addressed to %s or this machine's loopback names; "
                        "add the names clients use with --allowed-hosts", ", ".join(dict.fromkeys(hosts)))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"deepfill: serving on http://{host}:{args.port}/ (model on {inpainter.device}; Ctrl+C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
