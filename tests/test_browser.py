"""End to end in headless Chromium: open a photo, paint a stroke, Inpaint, download the result.

Needs Playwright's Python package and Debian's Chromium at /usr/bin/chromium (no browser
download); skipped with the reason when either is missing.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from conftest import photo

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1280, 960  # above max_size 1024: shown scaled, filled through the crop strategy


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'deepfill[dev]'; it needs no browser download)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or make browser-deps)"
    for module in ("fastapi", "uvicorn", "httpx"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install 'deepfill[serve,dev]')"
    return None


if (_reason := _missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from python_multipart import create_form_parser  # noqa: E402

from deepfill.server import create_app  # noqa: E402
from test_server import running_server  # noqa: E402


class RecordUploads:
    """ASGI wrapper keeping the body of every POST to /api/v1/inpaint, as the server received it."""

    def __init__(self, app) -> None:
        self.app = app
        self.uploads: list[tuple[str, bytes]] = []  # (content type, body)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/v1/inpaint":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording_receive, send)
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        self.uploads.append((content_type, b"".join(chunks)))


@pytest.fixture(scope="module")
def app(inpainter) -> RecordUploads:
    return RecordUploads(create_app(inpainter))


@pytest.fixture(scope="module")
def page(app) -> Iterator[Page]:
    with running_server(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 600}, accept_downloads=True)
        page.set_default_timeout(120_000)
        page.goto(url)
        yield page
        browser.close()


def form_parts(body: bytes, content_type: str) -> dict[str, bytes]:
    """The fields of a multipart body, as the server received them."""
    parts: dict[str, bytes] = {}

    def on_file(file) -> None:
        file.file_object.seek(0)
        parts[file.field_name.decode()] = file.file_object.read()

    def on_field(field) -> None:
        parts[field.field_name.decode()] = field.value

    parser = create_form_parser({"Content-Type": content_type.encode()}, on_field, on_file,
                                config={"MAX_MEMORY_FILE_SIZE": len(body) + 1})
    parser.write(body)
    parser.finalize()
    return parts


def wait_for_status(page: Page, state: str) -> None:
    page.wait_for_function(f"document.getElementById('status').dataset.state === {state!r}")


def stroke(page: Page, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through ``points`` given as fractions of the displayed mask canvas."""
    box = page.locator("#mask").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_paint_inpaint_download(page: Page, app: RecordUploads, tmp_path):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    source = photo(WIDTH, HEIGHT, seed=5)
    source.save(tmp_path / "photo.png")

    page.set_input_files("#file", str(tmp_path / "photo.png"))
    wait_for_status(page, "ready")
    assert page.eval_on_selector("#mask", "c => [c.width, c.height]") == [WIDTH, HEIGHT]
    assert page.locator("#mask").bounding_box()["width"] < WIDTH / 2  # shown scaled down
    for _ in range(5):
        page.keyboard.press("[")  # brush 40 -> 18 screen pixels
    assert page.input_value("#size") == "18"

    stroke(page, [(0.40, 0.42), (0.45, 0.45), (0.50, 0.43)])
    stroke(page, [(0.80, 0.80), (0.90, 0.85)])
    page.keyboard.press("Control+z")  # the second stroke is undone and must not reach the server
    page.click("#inpaint")
    wait_for_status(page, "done")
    assert len(app.uploads) == 1
    parts = form_parts(app.uploads[0][1], app.uploads[0][0])
    assert parts["image"] == (tmp_path / "photo.png").read_bytes()  # the file itself, not a re-encoding
    mask_image = Image.open(io.BytesIO(parts["mask"]))
    assert mask_image.size == (WIDTH, HEIGHT)  # painted at full resolution
    hole = np.asarray(mask_image.convert("L")) > 127
    assert hole[int(0.45 * HEIGHT), int(0.45 * WIDTH)]  # on the stroke
    assert not hole[int(0.85 * HEIGHT), int(0.85 * WIDTH)]  # the undone stroke
    assert 0.001 < hole.mean() < 0.05

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "photo-inpainted.png"
    result = Image.open(download.path())
    assert result.size == (WIDTH, HEIGHT) and result.format == "PNG"
    before, after = np.asarray(source), np.asarray(result.convert("RGB"))
    np.testing.assert_array_equal(after[~hole], before[~hole])
    assert (after[hole] != before[hole]).any(axis=-1).mean() > 0.9

    # Before/after toggle and the attention overlay.
    result_src = page.get_attribute("#photo", "src")
    page.click("#compare")
    assert page.get_attribute("#photo", "src") != result_src
    page.click("#compare")
    assert page.get_attribute("#photo", "src") == result_src
    with page.expect_response("**/api/v1/inpaint") as attention_info:
        page.check("#attention-toggle")
    assert attention_info.value.status == 200
    page.wait_for_selector("#attention", state="visible")
    assert not errors, errors


def test_touch_brush_eraser_undo_redo(page: Page, tmp_path):
    """Touch input paints through pointer events; the eraser, undo and redo replay the strokes."""
    context = page.context.browser.new_context(has_touch=True, viewport={"width": 800, "height": 600})
    try:
        touch = context.new_page()
        touch.goto(page.url)
        photo(320, 240).save(tmp_path / "small.png")
        touch.set_input_files("#file", str(tmp_path / "small.png"))
        wait_for_status(touch, "ready")
        box = touch.locator("#mask").bounding_box()
        centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        alpha = "c => c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data[3]"

        touch.touchscreen.tap(*centre)
        assert touch.eval_on_selector("#mask", alpha) == 255
        assert touch.is_enabled("#inpaint") and touch.is_enabled("#undo")
        touch.click("#eraser")
        touch.touchscreen.tap(*centre)
        assert touch.eval_on_selector("#mask", alpha) == 0
        touch.click("#undo")
        assert touch.eval_on_selector("#mask", alpha) == 255
        touch.click("#redo")
        assert touch.eval_on_selector("#mask", alpha) == 0
        touch.click("#undo")
        touch.click("#undo")
        assert touch.eval_on_selector("#mask", alpha) == 0
        assert touch.is_disabled("#inpaint") and touch.is_disabled("#undo")
    finally:
        context.close()


def test_api_docs_render_offline(page: Page):
    """/docs draws the API with Swagger UI served by the app itself; requests elsewhere are refused."""
    outside: list[str] = []

    def only_loopback(route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context = page.context.browser.new_context()
    try:
        docs = context.new_page()
        docs.route("**/*", only_loopback)
        docs.goto(page.url.rstrip("/") + "/docs")
        docs.get_by_text("/api/v1/inpaint").first.wait_for()
        assert docs.title() == "deepfill - Swagger UI"
        assert outside == []
    finally:
        context.close()


@contextlib.contextmanager
def new_page(page: Page, url: str | None = None) -> Iterator[Page]:
    """A fresh page (no image, no work) on ``url`` (default: the module's server), health loaded."""
    context = page.context.browser.new_context(viewport={"width": 800, "height": 600}, accept_downloads=True)
    try:
        fresh = context.new_page()
        fresh.set_default_timeout(120_000)
        fresh.goto(url or page.url)
        fresh.wait_for_function("document.getElementById('model').textContent !== 'loading model info…'")
        yield fresh
    finally:
        context.close()


def test_keyboard_open_inpaint_attention_and_download(page: Page, tmp_path):
    """Open… is reached with Tab and opened with Enter; Enter and Space act on the focused control."""
    photo(320, 240, seed=2).save(tmp_path / "p.png")
    with new_page(page) as keys:
        for _ in range(6):
            keys.keyboard.press("Tab")
            if keys.evaluate("document.activeElement.id") == "open":
                break
        assert keys.evaluate("document.activeElement.id") == "open"
        with keys.expect_file_chooser() as chooser:
            keys.keyboard.press("Enter")
        chooser.value.set_files(str(tmp_path / "p.png"))
        wait_for_status(keys, "ready")
        stroke(keys, [(0.4, 0.4), (0.6, 0.5)])  # painting itself needs a pointer
        keys.focus("#inpaint")
        keys.keyboard.press("Enter")
        wait_for_status(keys, "done")
        shown = keys.get_attribute("#photo", "src")
        keys.focus("#attention-toggle")
        with keys.expect_response("**/api/v1/inpaint") as attention:
            keys.keyboard.press(" ")  # ticks the box; does not flip before/after
        assert attention.value.status == 200
        assert keys.is_checked("#attention-toggle") and keys.get_attribute("#photo", "src") == shown
        keys.focus("#download")
        with keys.expect_download() as download:
            keys.keyboard.press("Enter")
        assert download.value.suggested_filename == "p-inpainted.png"


def test_opening_another_image_asks_before_discarding_work(page: Page, tmp_path):
    photo(320, 240, seed=3).save(tmp_path / "first.png")
    photo(320, 240, seed=4).save(tmp_path / "second.png")
    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "first.png"))  # nothing to lose yet: no question
        wait_for_status(p, "ready")
        stroke(p, [(0.3, 0.3), (0.6, 0.6)])
        with p.expect_event("dialog") as asked:
            p.set_input_files("#file", str(tmp_path / "second.png"))
        assert "discarded" in asked.value.message
        asked.value.dismiss()
        p.wait_for_timeout(300)
        assert "first.png" in p.text_content("#info") and p.is_enabled("#undo")  # the work is kept
        with p.expect_event("dialog") as asked:
            p.set_input_files("#file", str(tmp_path / "second.png"))
        asked.value.accept()
        p.wait_for_function("document.getElementById('info').textContent.includes('second.png')")
        assert not p.is_enabled("#undo")


def test_an_image_above_the_servers_limits_is_refused_when_opened(page: Page, inpainter, tmp_path):
    photo(320, 240, seed=5).save(tmp_path / "big.png")
    with running_server(create_app(inpainter, max_pixels=200 * 150)) as url, new_page(page, url) as p:
        p.set_input_files("#file", str(tmp_path / "big.png"))
        wait_for_status(p, "error")
        message = p.text_content("#status")
        assert "320×240" in message and "larger than this server takes" in message, message
        assert "--max-pixels" not in message
        assert p.is_hidden("#frame")
