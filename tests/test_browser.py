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

    # Holding Space shows the original; letting go, the result again. Then the attention overlay.
    result_src = page.get_attribute("#photo", "src")
    page.keyboard.down(" ")
    assert page.get_attribute("#photo", "src") != result_src
    page.keyboard.up(" ")
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
        # Playwright turns file-chooser interception on without waiting for it: a listener added
        # now, long before any key press, keeps a chooser opened by Enter from being missed.
        fresh.on("filechooser", lambda _chooser: None)
        fresh.set_default_timeout(120_000)
        fresh.goto(url or page.url)
        fresh.wait_for_function("document.getElementById('model').textContent !== 'loading model info…'")
        yield fresh
    finally:
        context.close()


def tab_to(page: Page, element_id: str, presses: int = 30) -> None:
    """Press Tab until ``element_id`` has the focus, as a keyboard user would."""
    for _ in range(presses):
        if page.evaluate("document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == element_id


def test_keyboard_only_open_mask_inpaint_attention_and_download(page: Page, tmp_path):
    """Open…, Mask…, Inpaint and Download reached with Tab and pressed with Enter; Space on a
    focused control acts on it (ticks the box) instead of its page-wide meaning."""
    photo(320, 240, seed=2).save(tmp_path / "p.png")
    Image.fromarray(np.where(np.arange(240)[:, None] // 80 == 1, 255, 0).astype(np.uint8)
                    .repeat(320, axis=1)).save(tmp_path / "p_mask.png")  # the middle third of the rows
    with new_page(page) as keys:
        tab_to(keys, "open")
        with keys.expect_file_chooser() as chooser:
            keys.keyboard.press("Enter")
        chooser.value.set_files(str(tmp_path / "p.png"))
        wait_for_status(keys, "ready")
        tab_to(keys, "open-mask")
        with keys.expect_file_chooser() as chooser:
            keys.keyboard.press("Enter")
        chooser.value.set_files(str(tmp_path / "p_mask.png"))
        keys.wait_for_function("document.getElementById('status').textContent.includes('p_mask.png loaded')")
        tab_to(keys, "inpaint")
        keys.keyboard.press("Enter")
        wait_for_status(keys, "done")
        shown = keys.get_attribute("#photo", "src")
        tab_to(keys, "attention-toggle")
        with keys.expect_response("**/api/v1/inpaint") as attention:
            keys.keyboard.press(" ")  # ticks the box; does not show the original
        assert attention.value.status == 200
        assert keys.is_checked("#attention-toggle") and keys.get_attribute("#photo", "src") == shown
        tab_to(keys, "download")
        with keys.expect_download() as download:
            keys.keyboard.press("Enter")
        assert download.value.suggested_filename == "p-inpainted.png"
        result = np.asarray(Image.open(download.value.path()).convert("RGB"))
        before = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
        np.testing.assert_array_equal(result[:80], before[:80])  # outside the loaded mask: unchanged
        assert (result[100:140] != before[100:140]).any(axis=-1).mean() > 0.9


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


def mask_alpha(page: Page, x: float, y: float) -> int:
    """The painted mask's alpha at image pixel (x, y): 255 = hole."""
    return page.eval_on_selector("#mask", f"c => c.getContext('2d').getImageData({int(x)}, {int(y)}, 1, 1).data[3]")


def test_second_pass_on_the_result_and_undo_back_to_the_original(page: Page, app: RecordUploads, tmp_path):
    """Painting on a result starts the next pass from it; undo walks back through passes and strokes."""
    photo(320, 240, seed=6).save(tmp_path / "two.png")
    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "two.png"))
        wait_for_status(p, "ready")
        original_src = p.get_attribute("#photo", "src")
        stroke(p, [(0.2, 0.3), (0.4, 0.3)])  # stroke A: image rows ~72, columns 64-128
        uploads = len(app.uploads)
        p.click("#inpaint")
        wait_for_status(p, "done")
        first_src = p.get_attribute("#photo", "src")
        assert first_src != original_src and mask_alpha(p, 96, 72) == 0  # the mask is spent on the pass

        stroke(p, [(0.6, 0.7), (0.8, 0.7)])  # stroke B, painted straight on the result
        assert p.is_enabled("#inpaint") and mask_alpha(p, 224, 168) == 255
        p.click("#inpaint")
        wait_for_status(p, "done")
        assert "pass 2" in p.text_content("#status")
        second_src = p.get_attribute("#photo", "src")
        assert len(app.uploads) == uploads + 2
        first = form_parts(app.uploads[-2][1], app.uploads[-2][0])
        second = form_parts(app.uploads[-1][1], app.uploads[-1][0])
        assert first["image"] == (tmp_path / "two.png").read_bytes()
        first_result = np.asarray(Image.open(io.BytesIO(second["image"])).convert("RGB"))  # pass 2 starts from it
        hole_a = np.asarray(Image.open(io.BytesIO(first["mask"])).convert("L")) > 127
        hole_b = np.asarray(Image.open(io.BytesIO(second["mask"])).convert("L")) > 127
        assert hole_a[72, 96] and not hole_a[168, 224] and hole_b[168, 224] and not hole_b[72, 96]
        assert (first_result[hole_a] != np.asarray(Image.open(tmp_path / "two.png"))[hole_a]).any(axis=-1).mean() > 0.9

        # The original is one press away, whatever the pass.
        box = p.locator("#compare").bounding_box()
        p.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        p.mouse.down()
        assert p.get_attribute("#photo", "src") == original_src
        p.mouse.up()
        assert p.get_attribute("#photo", "src") == second_src

        p.click("#undo")  # pass 2 undone: the first result, with stroke B back on it
        assert p.get_attribute("#photo", "src") == first_src and mask_alpha(p, 224, 168) == 255
        p.click("#undo")  # stroke B
        assert mask_alpha(p, 224, 168) == 0 and p.get_attribute("#photo", "src") == first_src
        p.click("#undo")  # pass 1: the original, with stroke A
        assert p.get_attribute("#photo", "src") == original_src and mask_alpha(p, 96, 72) == 255
        assert p.get_attribute("#download", "aria-disabled") == "true"
        p.click("#undo")  # stroke A
        assert mask_alpha(p, 96, 72) == 0 and p.is_disabled("#undo") and p.is_disabled("#inpaint")
        for _ in range(3):
            p.click("#redo")
        assert p.get_attribute("#photo", "src") == first_src and mask_alpha(p, 224, 168) == 255
        assert len(app.uploads) == uploads + 2  # redo reuses the result, no new request


def test_zoom_and_pan(page: Page, tmp_path):
    photo(WIDTH, HEIGHT, seed=7).save(tmp_path / "big.png")
    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "big.png"))
        wait_for_status(p, "ready")
        fitted = p.locator("#mask").bounding_box()
        assert fitted["width"] < WIDTH / 1.5 and "shown at" in p.text_content("#info")

        # The wheel zooms about the pointer: the image point under it stays under it.
        x, y = fitted["x"] + 0.3 * fitted["width"], fitted["y"] + 0.6 * fitted["height"]
        p.mouse.move(x, y)
        p.mouse.wheel(0, -400)
        p.wait_for_function(f"document.getElementById('mask').getBoundingClientRect().width > {fitted['width'] * 1.5}")
        zoomed = p.locator("#mask").bounding_box()
        assert (x - zoomed["x"]) / zoomed["width"] == pytest.approx(0.3, abs=0.005)
        assert (y - zoomed["y"]) / zoomed["height"] == pytest.approx(0.6, abs=0.005)

        # A brush of the same screen size paints a finer line in image pixels, where the pointer is.
        p.keyboard.press("b")
        p.mouse.down()
        p.mouse.move(x + 30, y, steps=5)
        p.mouse.up()
        image_x, image_y = 0.3 * WIDTH, 0.6 * HEIGHT
        image_per_screen = WIDTH / zoomed["width"]
        assert mask_alpha(p, image_x + 15 * image_per_screen, image_y) == 255
        assert mask_alpha(p, image_x + 15 * image_per_screen, image_y + 30 * image_per_screen) == 0  # 40 px brush: 20 px either side

        # Alt+drag pans by the pointer's movement; the zoom stays.
        p.keyboard.down("Alt")
        p.mouse.move(400, 300)
        p.mouse.down()
        p.mouse.move(300, 250, steps=5)
        p.mouse.up()
        p.keyboard.up("Alt")
        panned = p.locator("#mask").bounding_box()
        assert panned["x"] == pytest.approx(zoomed["x"] - 100, abs=1)
        assert panned["y"] == pytest.approx(zoomed["y"] - 50, abs=1)
        assert panned["width"] == pytest.approx(zoomed["width"], abs=0.5)
        assert mask_alpha(p, 0.4 * WIDTH, 0.4 * HEIGHT) == 0  # panning paints nothing
        assert p.evaluate("state.ops.length") == 1

        p.keyboard.press("0")  # back to the whole image
        assert p.locator("#mask").bounding_box() == pytest.approx(fitted, abs=0.5)
        p.click("#zoom-in")
        assert p.locator("#mask").bounding_box()["width"] == pytest.approx(1.5 * fitted["width"], rel=0.01)
        p.keyboard.press("-")
        assert p.locator("#mask").bounding_box()["width"] == pytest.approx(fitted["width"], abs=0.5)


def test_loading_a_mask_file(page: Page, app: RecordUploads, tmp_path):
    """A mask file of the image's shape is scaled to it (nearest), shown, undoable and sent."""
    photo(320, 240, seed=8).save(tmp_path / "m.png")
    half = np.zeros((120, 160), np.uint8)
    half[30:60, 40:100] = 255  # image rows 60-120, columns 80-200
    Image.fromarray(half).save(tmp_path / "m_mask.png")
    Image.new("L", (100, 100), 255).save(tmp_path / "square_mask.png")
    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "m.png"))
        wait_for_status(p, "ready")
        p.set_input_files("#mask-file", str(tmp_path / "square_mask.png"))
        wait_for_status(p, "error")
        assert p.is_visible("#notice") and "different shape" in p.text_content("#notice")
        assert p.is_disabled("#inpaint")

        p.set_input_files("#mask-file", str(tmp_path / "m_mask.png"))
        wait_for_status(p, "ready")
        assert "scaled from 160×120" in p.text_content("#status") and p.is_hidden("#notice")
        assert mask_alpha(p, 150, 90) == 255 and mask_alpha(p, 40, 40) == 0
        p.click("#undo")
        assert mask_alpha(p, 150, 90) == 0
        p.click("#redo")
        p.click("#inpaint")
        wait_for_status(p, "done")
        sent = np.asarray(Image.open(io.BytesIO(form_parts(*reversed(app.uploads[-1]))["mask"])).convert("L")) > 127
        expected = np.zeros((240, 320), bool)
        expected[60:120, 80:200] = True
        np.testing.assert_array_equal(sent, expected)


def test_errors_and_progress_are_shown_over_the_image(page: Page, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture, only text")
    photo(320, 240, seed=9).save(tmp_path / "e.png")
    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "notes.png"))
        wait_for_status(p, "error")
        assert "notes.png is not an image" in p.text_content("#notice")
        stage, notice = p.locator("#stage").bounding_box(), p.locator("#notice").bounding_box()
        assert stage["y"] <= notice["y"] and notice["y"] + notice["height"] <= stage["y"] + stage["height"]
        p.keyboard.press("Escape")
        assert p.is_hidden("#notice")

        held = []
        p.route("**/api/v1/inpaint", lambda route: held.append(route))  # answered by the test, later
        p.set_input_files("#file", str(tmp_path / "e.png"))
        wait_for_status(p, "ready")
        stroke(p, [(0.3, 0.3), (0.6, 0.6)])
        p.click("#inpaint")
        p.wait_for_function("document.getElementById('progress-text').textContent.includes('Inpainting… 0.3')")
        assert p.is_visible("#progress") and p.is_disabled("#inpaint") and p.is_disabled("#undo")
        held[0].fulfill(status=500, json={"error": "internal", "message": "the model ran out of memory"})
        wait_for_status(p, "error")
        assert p.is_hidden("#progress") and p.is_visible("#notice")
        assert "Inpainting failed: the model ran out of memory" in p.text_content("#notice")
        assert p.is_enabled("#inpaint")  # the mask is kept for another try


def test_blend_and_jpeg_quality_options_reach_the_server(page: Page, app: RecordUploads, tmp_path):
    photo(320, 240, seed=10).save(tmp_path / "q.jpg", quality=90)
    photo(320, 240, seed=10).save(tmp_path / "q.png")
    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "q.png"))
        wait_for_status(p, "ready")
        assert p.input_value("#blend") == "calibrated" and p.is_disabled("#quality")  # PNG results: lossless
        stroke(p, [(0.3, 0.3), (0.6, 0.6)])
        p.click("#inpaint")
        wait_for_status(p, "done")
        parts = form_parts(*reversed(app.uploads[-1]))
        assert parts["blend"] == b"calibrated" and "quality" not in parts

    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "q.jpg"))
        wait_for_status(p, "ready")
        p.click("#options summary")
        p.select_option("#blend", "none")
        p.fill("#quality", "40")
        stroke(p, [(0.3, 0.3), (0.6, 0.6)])
        p.click("#inpaint")
        wait_for_status(p, "done")
        parts = form_parts(*reversed(app.uploads[-1]))
        assert parts["blend"] == b"none" and parts["quality"] == b"40"
        with p.expect_download() as download:
            p.click("#download")
        assert download.value.suggested_filename == "q-inpainted.jpg"
        assert Image.open(download.value.path()).format == "JPEG"


def _contrast(page: Page, selector: str) -> float:
    """WCAG contrast ratio of an element's text colour on its background colour."""
    colours = page.eval_on_selector(selector, "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")

    def luminance(css: str) -> float:
        channels = [int(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted(map(luminance, colours), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_inpaint_button_is_readable_and_stays_blue_on_hover(page: Page, tmp_path):
    photo(320, 240, seed=11).save(tmp_path / "c.png")
    with new_page(page) as p:
        p.set_input_files("#file", str(tmp_path / "c.png"))
        wait_for_status(p, "ready")
        stroke(p, [(0.3, 0.3), (0.6, 0.6)])
        assert _contrast(p, "#inpaint") >= 4.5
        p.hover("#inpaint")
        p.wait_for_timeout(100)
        assert _contrast(p, "#inpaint") >= 4.5
        background = p.eval_on_selector("#inpaint", "e => getComputedStyle(e).backgroundColor")
        red, green, blue = (int(v) for v in background[background.index("(") + 1:-1].split(",")[:3])
        assert blue > red + 80  # a hovered Inpaint looks pressable, not greyed out


def test_two_finger_pinch_zooms_and_paints_nothing(page: Page, tmp_path):
    context = page.context.browser.new_context(has_touch=True, viewport={"width": 800, "height": 600})
    try:
        touch = context.new_page()
        touch.goto(page.url)
        photo(WIDTH, HEIGHT, seed=12).save(tmp_path / "pinch.png")
        touch.set_input_files("#file", str(tmp_path / "pinch.png"))
        wait_for_status(touch, "ready")
        fitted = touch.locator("#mask").bounding_box()
        cx, cy = fitted["x"] + fitted["width"] / 2, fitted["y"] + fitted["height"] / 2
        cdp = context.new_cdp_session(touch)

        def fingers(kind: str, spread: float) -> None:
            points = [] if kind == "touchEnd" else [{"x": cx - spread, "y": cy, "id": 0}, {"x": cx + spread, "y": cy, "id": 1}]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        fingers("touchStart", 40)
        for spread in (50, 60, 70, 80):
            fingers("touchMove", spread)
        fingers("touchEnd", 0)
        zoomed = touch.locator("#mask").bounding_box()
        assert zoomed["width"] == pytest.approx(2 * fitted["width"], rel=0.05)  # fingers 80 -> 160 px apart
        assert (cx - zoomed["x"]) / zoomed["width"] == pytest.approx(0.5, abs=0.01)  # about their midpoint
        assert touch.is_disabled("#undo") and touch.is_disabled("#inpaint")  # no stroke was left behind
    finally:
        context.close()
