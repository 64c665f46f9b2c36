"""The REST API against the real (placeholder) model, through a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import photo, rect_mask

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
from deepfill.config import DEFAULT_MAX_PIXELS  # noqa: E402
from deepfill.processing import DEFAULT_JPEG_QUALITY  # noqa: E402
from deepfill.inpainter import Inpainter  # noqa: E402
from deepfill.server import DEFAULT_QUEUE_SIZE, create_app  # noqa: E402
from deepfill.server.app import InferenceQueue  # noqa: E402

HOLE = (30, 40, 66, 90)  # top, left, bottom, right in a 128x96 image


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def default_url(inpainter) -> Iterator[str]:
    with running_server(create_app(inpainter)) as url:
        yield url


@pytest.fixture(scope="module")
def strict_url(inpainter) -> Iterator[str]:
    """Small limits and no waiting room: one request at a time, nothing queued behind it."""
    with running_server(create_app(inpainter, max_upload_mb=0.25, max_pixels=200 * 200, queue_size=0)) as url:
        yield url


def encode(image: Image.Image, format_name: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name)
    return buffer.getvalue()


def post(url: str, image: bytes, mask: bytes, image_name: str = "photo.png", **kwargs) -> httpx.Response:
    files = {"image": (image_name, image), "mask": ("mask.png", mask)}
    return httpx.post(f"{url}/api/v1/inpaint", files=files, timeout=120, **kwargs)


def decode(response: httpx.Response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code and body["message"]
    return body["message"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header announces ``width`` x ``height`` (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --- page, docs, health, model ----------------------------------------------------------------

def test_page_docs_and_openapi(default_url):
    page = httpx.get(default_url + "/")
    assert page.status_code == 200 and 'id="mask"' in page.text and "/static/app.js" in page.text
    assert httpx.get(default_url + "/static/app.js").status_code == 200
    docs = httpx.get(default_url + "/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert "://" not in docs.text  # nothing from the internet: every asset is served here
    for asset in ("/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs/swagger-ui.css"):
        assert httpx.get(default_url + asset).status_code == 200
    spec = httpx.get(default_url + "/openapi.json").json()
    form = spec["paths"]["/api/v1/inpaint"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image", "mask"]
    assert {"/api/v1/health", "/api/v1/model"} <= set(spec["paths"])


def test_health_and_model_card(default_url, inpainter):
    health = httpx.get(default_url + "/api/v1/health").json()
    assert health["status"] == "ok" and health["trained"] is Inpainter.from_pretrained(device="cpu").is_trained and health["device"] == "cpu"
    assert health["queue"] == {"capacity": DEFAULT_QUEUE_SIZE + 1, "pending": 0}
    assert health["limits"] == {"max_upload_bytes": 20 * 1024 * 1024, "max_pixels": DEFAULT_MAX_PIXELS}
    assert health["defaults"] == {"blend": inpainter.blend, "jpeg_quality": DEFAULT_JPEG_QUALITY}
    assert httpx.get(default_url + "/api/v1/model").json() == inpainter.card


# --- successes --------------------------------------------------------------------------------

def test_inpaint_png_changes_only_the_hole(default_url):
    source, mask = photo(128, 96), rect_mask(128, 96, HOLE)
    response = post(default_url, encode(source), encode(mask))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-deepfill-trained"] == str(Inpainter.from_pretrained(device="cpu").is_trained).lower()
    result = decode(response)
    assert result.format == "PNG" and result.size == source.size and result.mode == "RGB"
    before, after, hole = np.asarray(source), np.asarray(result), np.asarray(mask) > 127
    np.testing.assert_array_equal(after[~hole], before[~hole])
    assert (after[hole] != before[hole]).any(axis=-1).mean() > 0.9


def test_jpeg_in_jpeg_out(default_url):
    source = photo(128, 96, seed=1)
    response = post(default_url, encode(source, "JPEG"), encode(rect_mask(128, 96, HOLE)), image_name="photo.jpg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert 'filename="inpainted.jpg"' in response.headers["content-disposition"]
    result = decode(response)
    assert result.format == "JPEG" and result.size == source.size


@pytest.mark.parametrize("how", ["query", "form"])
def test_jpeg_quality(default_url, how):
    source, mask = encode(photo(128, 96, seed=1), "JPEG"), encode(rect_mask(128, 96, HOLE))
    sizes = {}
    for quality in (20, 95):
        kwargs = {"params": {"quality": quality}} if how == "query" else {"data": {"quality": str(quality)}}
        response = post(default_url, source, mask, image_name="photo.jpg", **kwargs)
        assert response.status_code == 200, response.text
        sizes[quality] = len(response.content)
    assert sizes[20] < sizes[95] / 2
    default = post(default_url, source, mask, image_name="photo.jpg")
    assert len(default.content) == sizes[95]  # the default is 95
    for bad in ("0", "101", "high"):
        kwargs = {"params": {"quality": bad}} if how == "query" else {"data": {"quality": bad}}
        assert post(default_url, source, mask, **kwargs).status_code in (400, 422)


def test_rgba_png_keeps_alpha(default_url):
    source = photo(128, 96, seed=2).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 128, dtype=np.uint8), (96, 1))
    source.putalpha(Image.fromarray(alpha))
    result = decode(post(default_url, encode(source), encode(rect_mask(128, 96, HOLE))))
    assert result.mode == "RGBA"
    hole = np.asarray(rect_mask(128, 96, HOLE)) > 0
    np.testing.assert_array_equal(np.asarray(result)[:, :, 3], np.where(hole, 255, alpha))  # filled = opaque


def test_blend_field_and_all_white_mask(default_url):
    source, mask = encode(photo(128, 96)), encode(rect_mask(128, 96, HOLE))
    results = {blend: np.asarray(decode(post(default_url, source, mask, data={"blend": blend}))).astype(int)
               for blend in ("calibrated", "poisson", "none")}
    default = np.asarray(decode(post(default_url, source, mask))).astype(int)
    assert np.array_equal(default, results["calibrated"])
    assert not np.array_equal(results["calibrated"], results["poisson"])
    assert not np.array_equal(results["poisson"], results["none"])
    assert "blend" in assert_error(post(default_url, source, mask, data={"blend": "laplace"}), 400, "bad_form")
    assert_error(post(default_url, source, encode(Image.new("L", (128, 96), 255))), 400, "no_known_pixels")


@pytest.mark.parametrize("how", ["query", "form"])
def test_attention_map(default_url, how):
    source, mask = encode(photo(128, 96)), encode(rect_mask(128, 96, HOLE))
    kwargs = {"params": {"attention": "true"}} if how == "query" else {"data": {"attention": "true"}}
    response = post(default_url, source, mask, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert 'filename="attention.png"' in response.headers["content-disposition"]
    flow = decode(response)
    assert flow.size == (128, 96) and flow.mode == "RGB"
    inside = np.asarray(flow)[HOLE[0]:HOLE[2], HOLE[1]:HOLE[3]]
    assert inside.std() > 0  # colour-coded offsets, not a blank image


def test_resize_mask(default_url):
    source = photo(128, 96)
    small_mask = encode(rect_mask(64, 48, tuple(v // 2 for v in HOLE)))
    message = assert_error(post(default_url, encode(source), small_mask), 400, "size_mismatch")
    assert "64x48" in message and "128x96" in message and "resize_mask" in message
    response = post(default_url, encode(source), small_mask, data={"resize_mask": "true"})
    assert response.status_code == 200, response.text
    changed = (np.asarray(decode(response)) != np.asarray(source)).any(axis=-1)
    hole = np.asarray(rect_mask(128, 96, HOLE)) > 127
    assert changed.any() and not changed[~hole].any()


def test_empty_mask_returns_the_image(default_url):
    source = photo(128, 96)
    result = decode(post(default_url, encode(source), encode(rect_mask(128, 96, (0, 0, 0, 0)))))
    np.testing.assert_array_equal(np.asarray(result), np.asarray(source))


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["image", "mask"])
def test_not_an_image_is_415(default_url, field):
    parts = {"image": encode(photo(128, 96)), "mask": encode(rect_mask(128, 96, HOLE))}
    parts[field] = b"this is not an image, just some text\n" * 20
    message = assert_error(post(default_url, parts["image"], parts["mask"]), 415, "not_an_image")
    assert f"the {field} is not an image" in message


def test_postscript_is_refused_at_once(default_url):
    """EPS is not decoded at all (Pillow would hand it to Ghostscript, which runs it: this loops)."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\n"
    start = time.perf_counter()
    message = assert_error(post(default_url, eps, encode(rect_mask(64, 64, (8, 8, 32, 32)))), 415, "not_an_image")
    assert "supported format" in message and time.perf_counter() - start < 10


def test_cross_origin_posts_and_foreign_hosts_are_refused(default_url):
    """A page on another site cannot make a visitor's browser post here, nor a rebinding DNS name."""
    source, mask = encode(photo(128, 96)), encode(rect_mask(128, 96, HOLE))
    message = assert_error(post(default_url, source, mask, headers={"Origin": "http://evil.example"}), 403,
                           "cross_origin")
    assert "--allowed-origins" in message
    same = post(default_url, source, mask, headers={"Origin": default_url})
    assert same.status_code == 200, same.text
    assert_error(httpx.get(default_url + "/api/v1/health", headers={"Host": "rebound.example:8080"}), 400, "bad_host")


def test_cross_origin_can_be_allowed_deliberately(inpainter):
    app = create_app(inpainter, allowed_origins=["https://tools.example"], allowed_hosts=["*"])
    with running_server(app) as url:
        source, mask = encode(photo(128, 96)), encode(rect_mask(128, 96, HOLE))
        assert post(url, source, mask, headers={"Origin": "https://tools.example"}).status_code == 200
        assert httpx.get(url + "/api/v1/health", headers={"Host": "any.example"}).status_code == 200


def test_unknown_paths_and_methods_answer_in_the_api_error_shape(default_url):
    assert_error(httpx.get(default_url + "/api/v1/nothing"), 404, "not_found")
    assert_error(httpx.get(default_url + "/api/v1/inpaint"), 405, "method_not_allowed")


def test_a_server_failure_does_not_leak_its_details(inpainter, monkeypatch):
    def fail(*_args, **_kwargs):
        raise RuntimeError("gs -sOutputFile=/tmp/secret-path failed")

    with running_server(create_app(inpainter)) as url:
        monkeypatch.setattr(inpainter, "inpaint_picture", fail)
        message = assert_error(post(url, encode(photo(128, 96)), encode(rect_mask(128, 96, HOLE))), 500,
                               "internal_error")
    assert "secret" not in message and "RuntimeError" not in message


def test_retry_after_counts_down_with_the_running_job():
    queue = InferenceQueue(0)
    queue._mean_seconds = 5.0
    queue.reserve()
    future = queue.submit(time.sleep, 2.5)
    time.sleep(1.2)
    assert queue.retry_after() in (3, 4)  # 5 s typical, ~1.2 s already run
    future.result()
    queue.shutdown()


def _slow_upload(url: str) -> socket.socket:
    """A connection that sends headers and the start of a large multipart body, then stalls."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)))
    conn.sendall(f"POST /api/v1/inpaint HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
                 "--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n".encode())
    return conn


def test_slow_uploads_do_not_lock_out_real_requests(default_url):
    """Five trickling bodies hold no queue place: a complete request behind them is served."""
    stalled = [_slow_upload(default_url) for _ in range(5)]
    try:
        time.sleep(0.5)
        response = post(default_url, encode(photo(128, 96)), encode(rect_mask(128, 96, HOLE)))
        assert response.status_code == 200, response.text
    finally:
        for conn in stalled:
            conn.close()


def test_a_body_slower_than_the_timeout_gets_408(inpainter):
    with running_server(create_app(inpainter, upload_timeout=1.0)) as url:
        conn = _slow_upload(url)
        try:
            conn.settimeout(10)
            start = time.perf_counter()
            answer = b""
            while b"upload_too_slow" not in answer and (chunk := conn.recv(4096)):
                answer += chunk
            answer = answer.decode("latin-1")
        finally:
            conn.close()
    assert answer.startswith("HTTP/1.1 408") and "upload_too_slow" in answer
    assert time.perf_counter() - start < 5


def test_truncated_image_is_400(default_url):
    data = encode(photo(128, 96))
    response = post(default_url, data[: len(data) // 2], encode(rect_mask(128, 96, HOLE)))
    assert "truncated" in assert_error(response, 400, "corrupt_image")


def test_form_errors(default_url):
    response = httpx.post(default_url + "/api/v1/inpaint", files={"image": ("a.png", encode(photo(128, 96)))})
    assert "'mask'" in assert_error(response, 400, "missing_field")
    assert_error(httpx.post(default_url + "/api/v1/inpaint", json={"image": "x"}), 415, "not_multipart")
    response = post(default_url, b"x", b"y", data={"resize_mask": "perhaps"})
    assert "resize_mask" in assert_error(response, 400, "bad_form")


def test_default_upload_limit_is_20_mib(default_url):
    blob = np.random.default_rng(0).bytes(20 * 1024 * 1024 + 1)
    message = assert_error(post(default_url, blob, b"mask"), 413, "upload_too_large")
    assert "20 MiB" in message


def test_decompression_bomb_refused_from_its_header(default_url):
    response = post(default_url, png_header_only(20_000, 20_000), encode(rect_mask(128, 96, HOLE)))
    assert f"above the limit of {DEFAULT_MAX_PIXELS:,} of this server" in assert_error(response, 413, "too_many_pixels")


def test_pixel_limit(strict_url):
    large, small = photo(256, 200), photo(128, 96)
    message = assert_error(post(strict_url, encode(large), encode(rect_mask(256, 200, HOLE))), 413, "too_many_pixels")
    assert "256x200" in message and "40,000" in message
    message = assert_error(post(strict_url, encode(small), encode(rect_mask(256, 200, HOLE))), 413, "too_many_pixels")
    assert message.startswith("the mask has")


def test_upload_limit_streamed_without_length(strict_url):
    """A chunked body (no Content-Length) is cut off as soon as it passes the limit."""
    boundary = "deepfill-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(64):
            yield b"\0" * 8192  # 512 KiB in all, twice the limit

    response = httpx.post(strict_url + "/api/v1/inpaint", content=body(), timeout=60,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "0.25 MiB" in assert_error(response, 413, "upload_too_large")


def test_full_queue_answers_503_with_retry_after(strict_url):
    image, mask = encode(photo(192, 192, seed=3)), encode(rect_mask(192, 192, (40, 40, 150, 150)))
    clients = 3
    barrier, responses = threading.Barrier(clients), [None] * clients

    def send(i: int) -> None:
        barrier.wait()
        responses[i] = post(strict_url, image, mask)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    for response in responses:
        if response.status_code == 503:
            assert_error(response, 503, "busy")
            assert int(response.headers["retry-after"]) >= 1
    # The places are given back: the queue is empty again and the next request goes through.
    assert httpx.get(strict_url + "/api/v1/health").json()["queue"] == {"capacity": 1, "pending": 0}
    assert post(strict_url, image, mask).status_code == 200


def test_serve_command_line(capsys):
    from deepfill.cli import build_parser, main

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.max_upload_mb, args.max_pixels, args.queue_size) == (
        "127.0.0.1", 8080, 20.0, DEFAULT_MAX_PIXELS, DEFAULT_QUEUE_SIZE)
    assert main(["serve", "--queue-size", "-1"]) == 2
    assert "--queue-size must be >= 0" in capsys.readouterr().err


def _memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak resident) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return {key: int(value.split()[0]) / 1024 for key, value in fields.items()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_concurrent_bombs_stay_within_the_memory_bound():
    """Five small PNGs that each decode to 16 MP arrive at once: the server decodes one request
    at a time and gives the memory back, so its peak stays near one request's working set."""
    side = 4000
    bomb = Image.new("RGB", (side, side), (120, 140, 90))
    mask = Image.new("L", (side, side), 0)
    mask.paste(255, (1900, 1900, 2000, 2000))
    bomb_png, mask_png = encode(bomb), encode(mask)
    del bomb, mask
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "deepfill", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "deepfill serve did not start"
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url + "/api/v1/health", timeout=2)
                break
            time.sleep(0.3)
        assert post(url, encode(photo(128, 96)), encode(rect_mask(128, 96, HOLE))).status_code == 200  # warm
        before = _memory_mib(server.pid)["VmRSS"]
        responses: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: responses.append(post(url, bomb_png, mask_png)))
                   for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        time.sleep(0.5)
        memory = _memory_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(r.status_code for r in responses) == [200] * 5
    megapixels = side * side / 1e6
    # The stated bound (README): about 16 bytes per pixel of the request being filled, whatever waits.
    assert memory["VmHWM"] - before < 24 * megapixels, (before, memory)
    assert memory["VmRSS"] - before < 64, (before, memory)


@pytest.mark.parametrize("scenario, extra", [
    ("slow", ["--slow-clients", "2", "--trickle-seconds", "0.5", "--serve-args", "--upload-timeout", "2"]),
    ("bombs", ["--bomb-side", "1500"]),
])
def test_load_benchmark_scenarios(tmp_path, scenario, extra):
    """benchmarks/load_server.py starts its own server, runs the scenario and reports memory."""
    script = Path(__file__).parents[1] / "benchmarks" / "load_server.py"
    summary_path = tmp_path / "summary.json"
    done = subprocess.run([sys.executable, str(script), "--spawn", "--scenario", scenario, "--clients", "2",
                           "--requests", "2", "--json", str(summary_path), *extra],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["ok_200"] == 2 and summary["failed"] == 0
    assert summary["memory_mib"]["peak"] >= summary["memory_mib"]["before"] > 0
    if scenario == "slow":
        assert summary["slow_clients"] == ["HTTP/1.1 408 Request Timeout"] * 2
    else:
        assert summary["image"] == "1500x1500"
