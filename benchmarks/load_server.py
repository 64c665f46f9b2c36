"""Bounded load test of ``deepfill serve``: N concurrent clients, M requests in all.

    deepfill serve --port 8080 &
    python benchmarks/load_server.py --url http://127.0.0.1:8080 --clients 4 --requests 20
    python benchmarks/load_server.py --spawn --scenario slow      # 5 trickling uploads beside the load
    python benchmarks/load_server.py --spawn --scenario bombs     # 5 concurrent 9000x9000 PNG bombs

Every request must end in 200 (an image) or an explicit 503 (queue full, with Retry-After);
anything else, a transport error or a request that outlives --timeout counts as a failure and
makes the script exit with status 1. After a 503 a client waits Retry-After seconds (capped by
--max-backoff) before its next request, as a polite client would; --no-backoff hammers instead.

Scenarios: ``normal`` is the load above. ``slow`` also keeps --slow-clients connections trickling
a multipart body (one byte every --trickle-seconds) open during it; the load must still be served,
and the trickling uploads should be answered 408 once the server's --upload-timeout has passed.
``bombs`` sends the load as --clients concurrent small PNGs that decode to --bomb-side squares.
With --spawn the script starts ``deepfill serve`` itself (arguments after --serve-args) on a free
loopback port and reports the server's resident memory: before the load, its peak (VmHWM) and
what it keeps afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import httpx
import numpy as np
from PIL import Image


@dataclass
class Outcome:
    status: int  # HTTP status, or 0 for a transport error / timeout
    seconds: float
    detail: str = ""


def make_inputs(size: int, hole: float, seed: int = 0) -> tuple[bytes, bytes]:
    """A photo-like PNG (gradients + noise) of size x size and a centred square hole of ``hole`` x size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = np.stack([xx / size, yy / size, 0.5 + 0.5 * np.sin(xx / 17.0 + yy / 23.0)], axis=2)
    rgb = (np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1) * 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    lo, side = int(size * (1 - hole) / 2), max(1, int(size * hole))
    mask[lo:lo + side, lo:lo + side] = 255
    encoded = []
    for array, mode in ((rgb, "RGB"), (mask, "L")):
        buffer = io.BytesIO()
        Image.fromarray(array, mode).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    return encoded[0], encoded[1]


def make_bomb(side: int) -> tuple[bytes, bytes]:
    """A flat ``side`` x ``side`` RGB PNG (a few hundred KB that decode to side² x 3 bytes) and a
    mask of its size with a 64-pixel square hole."""
    image = Image.new("RGB", (side, side), (120, 140, 90))
    mask = Image.new("L", (side, side), 0)
    mask.paste(255, (side // 2 - 32, side // 2 - 32, side // 2 + 32, side // 2 + 32))
    encoded = []
    for picture in (image, mask):
        buffer = io.BytesIO()
        picture.save(buffer, "PNG", compress_level=9)
        encoded.append(buffer.getvalue())
    return encoded[0], encoded[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def one_request(client: httpx.AsyncClient, url: str, image: bytes, mask: bytes) -> tuple[Outcome, float]:
    """Send one inpaint request; returns its outcome and how long to back off (Retry-After) afterwards."""
    start = time.perf_counter()
    try:
        response = await client.post(url, files={"image": ("photo.png", image), "mask": ("mask.png", mask)})
    except httpx.HTTPError as exc:  # includes timeouts: a request that hangs is a failure
        return Outcome(0, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"), 0.0
    seconds = time.perf_counter() - start
    if response.status_code == 200 and response.headers.get("content-type", "").startswith("image/"):
        return Outcome(200, seconds), 0.0
    if response.status_code == 503 and response.headers.get("retry-after", "").isdigit():
        return Outcome(503, seconds), float(response.headers["retry-after"])
    return Outcome(response.status_code, seconds, response.text[:200]), 0.0


async def trickle(url: str, seconds: float, stop: asyncio.Event) -> str:
    """A client that sends the headers and start of a large multipart body, then one byte every
    ``seconds`` until the server answers or ``stop`` is set; returns the status line (or why none)."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST /api/v1/inpaint HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1000000\r\n\r\n"
                 "--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n".encode())
    try:
        while not stop.is_set():
            await writer.drain()
            try:
                line = await asyncio.wait_for(reader.readline(), seconds)
                return line.decode("latin-1").strip() or "closed without an answer"
            except asyncio.TimeoutError:
                writer.write(b"\0")
        return "still open at the end of the load"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()


async def run_load(args: argparse.Namespace, image: bytes, mask: bytes) -> tuple[list[Outcome], float, list[str]]:
    """The load's outcomes, its wall time and what each trickling upload (slow scenario) was answered."""
    url = args.url.rstrip("/") + "/api/v1/inpaint"
    remaining = args.requests
    outcomes: list[Outcome] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            outcome, backoff = await one_request(client, url, image, mask)
            outcomes.append(outcome)
            if backoff and not args.no_backoff and remaining > 0:
                await asyncio.sleep(min(backoff, args.max_backoff))

    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    stop = asyncio.Event()
    slow = [asyncio.create_task(trickle(args.url, args.trickle_seconds, stop))
            for _ in range(args.slow_clients if args.scenario == "slow" else 0)]
    await asyncio.sleep(1.0 if slow else 0.0)  # the trickling bodies are in before the load starts
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(args.clients)))
        wall = time.perf_counter() - start
    if slow:  # they should get 408 once the server's --upload-timeout has passed
        await asyncio.wait(slow, timeout=args.slow_wait)
    stop.set()
    return outcomes, wall, [await task for task in slow]


def summarize(outcomes: list[Outcome], wall: float, args: argparse.Namespace, image_size: str,
              slow_answers: list[str]) -> dict:
    ok = [o.seconds for o in outcomes if o.status == 200]
    busy = [o for o in outcomes if o.status == 503]
    failed = [o for o in outcomes if o.status not in (200, 503)]
    return {
        "scenario": args.scenario, "clients": args.clients, "requests": len(outcomes), "image": image_size, "wall_s": round(wall, 2),
        "requests_per_s": round(len(outcomes) / wall, 3), "images_per_s": round(len(ok) / wall, 3),
        "ok_200": len(ok), "busy_503": len(busy), "failed": len(failed),
        "p50_s": round(percentile(ok, 50), 3), "p95_s": round(percentile(ok, 95), 3),
        "p50_all_s": round(percentile([o.seconds for o in outcomes], 50), 3),
        "p95_all_s": round(percentile([o.seconds for o in outcomes], 95), 3),
        "failures": [asdict(o) for o in failed[:5]],
        "slow_clients": slow_answers,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_server(serve_args: list[str]) -> tuple[subprocess.Popen, str]:
    """Start ``deepfill serve`` on a free loopback port; returns the process once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "deepfill", "serve", "--port", str(port), *serve_args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"deepfill serve exited with status {process.returncode}")
        try:
            httpx.get(url + "/api/v1/health", timeout=2)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("deepfill serve did not answer within 120 s")


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory (VmRSS) and its peak so far (VmHWM) of a process, in MiB (Linux)."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--url", default="http://127.0.0.1:8080", help="server base URL (default: %(default)s)")
    add("--clients", type=int, default=4, help="concurrent clients N (default: %(default)s)")
    add("--requests", type=int, default=20, help="requests M in all, over all clients (default: %(default)s)")
    add("--size", type=int, default=256, help="side of the generated square photo (default: %(default)s)")
    add("--hole", type=float, default=0.25, help="hole side as a fraction of the image side (default: %(default)s)")
    add("--image", help="use this image file instead of a generated one (with --mask)")
    add("--mask", help="mask file for --image")
    add("--timeout", type=float, default=300.0, help="seconds before a request counts as hung (default: %(default)s)")
    add("--no-backoff", action="store_true", help="do not wait Retry-After seconds after a 503")
    add("--max-backoff", type=float, default=10.0, help="cap on the wait after a 503 (default: %(default)s)")
    add("--json", help="also write the summary as JSON to this file")
    add("--scenario", choices=["normal", "slow", "bombs"], default="normal", help="see above (default: %(default)s)")
    add("--slow-clients", type=int, default=5, help="trickling uploads in the slow scenario (default: %(default)s)")
    add("--trickle-seconds", type=float, default=10.0, help="seconds between their bytes (default: %(default)s)")
    add("--slow-wait", type=float, default=90.0,
        help="seconds to wait after the load for the trickling uploads' answers (default: %(default)s)")
    add("--bomb-side", type=int, default=9000, help="decoded side of the bombs (default: %(default)s)")
    add("--spawn", action="store_true", help="start deepfill serve here and measure its memory (Linux)")
    add("--serve-args", nargs=argparse.REMAINDER, default=[], help="the rest is passed to deepfill serve")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be at least 1")
    if bool(args.image) != bool(args.mask):
        parser.error("--image and --mask go together")

    if args.image:
        image, mask = open(args.image, "rb").read(), open(args.mask, "rb").read()
        width, height = Image.open(io.BytesIO(image)).size
    elif args.scenario == "bombs":
        image, mask = make_bomb(args.bomb_side)
        width = height = args.bomb_side
        print(f"bomb: {len(image) / 1024:.0f} KiB PNG -> {width}x{height} RGB ({width * height * 3 / 2**20:.0f} MiB)")
    else:
        image, mask = make_inputs(args.size, args.hole)
        width = height = args.size
    process = None
    if args.spawn:
        process, args.url = spawn_server(args.serve_args)
    try:
        return measure(args, image, mask, f"{width}x{height}", process)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


def measure(args: argparse.Namespace, image: bytes, mask: bytes, image_size: str,
            process: subprocess.Popen | None) -> int:
    try:
        health = httpx.get(args.url.rstrip("/") + "/api/v1/health", timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"load_server: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    print(f"server: {health.get('model')} on {health.get('device')}, queue capacity {health['queue']['capacity']}")

    before = memory_mib(process.pid) if process else {}
    outcomes, wall, slow_answers = asyncio.run(run_load(args, image, mask))
    summary = summarize(outcomes, wall, args, image_size, slow_answers)
    if process:
        time.sleep(2.0)  # what the server keeps once the load is over
        after = memory_mib(process.pid)
        summary["memory_mib"] = {"before": before["VmRSS"], "peak": after["VmHWM"], "after": after["VmRSS"]}
    print(f"clients={summary['clients']} requests={summary['requests']} image={summary['image']} "
          f"wall={summary['wall_s']:.1f}s")
    print(f"  requests/s {summary['requests_per_s']:.3f}   images/s (200s) {summary['images_per_s']:.3f}")
    print(f"  latency of 200s: p50 {summary['p50_s']:.2f}s  p95 {summary['p95_s']:.2f}s   "
          f"(all responses: p50 {summary['p50_all_s']:.2f}s  p95 {summary['p95_all_s']:.2f}s)")
    print(f"  200: {summary['ok_200']}   503: {summary['busy_503']}   other/failed: {summary['failed']}")
    for answer in summary["slow_clients"]:
        print(f"  trickling upload: {answer}")
    if "memory_mib" in summary:
        memory = summary["memory_mib"]
        print(f"  server memory (MiB): {memory['before']:.0f} before, peak {memory['peak']:.0f}, "
              f"{memory['after']:.0f} after")
    for failure in summary["failures"]:
        print(f"  FAILED: status {failure['status']} after {failure['seconds']:.2f}s {failure['detail']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
