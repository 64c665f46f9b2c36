"""Screenshot of the web page after a fill, for the README.

Serves the bundled model on 127.0.0.1, opens an example photo in headless Chromium, loads its
mask file, inpaints and saves the page as a PNG. Needs ``.[serve,dev]`` and /usr/bin/chromium.

    python scripts/page_screenshot.py --photo examples/building.jpg --out docs/page.png
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from deepfill.inpainter import Inpainter
from deepfill.server import create_app

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=Path("examples/building.jpg"))
    parser.add_argument("--mask", type=Path, help="default: PHOTO's _mask_free.png beside it")
    parser.add_argument("--out", type=Path, default=Path("docs/page.png"))
    parser.add_argument("--size", default="1280x800", help="browser window, WIDTHxHEIGHT")
    parser.add_argument("--hold-original", action="store_true", help="show the original (as while holding Space)")
    args = parser.parse_args()
    mask = args.mask or args.photo.with_name(f"{args.photo.stem}_mask_free.png")
    width, height = (int(v) for v in args.size.split("x"))

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(Inpainter.from_pretrained()), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            page.wait_for_function("document.getElementById('model').textContent !== 'loading model info…'")
            page.set_input_files("#file", str(args.photo))
            page.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
            page.set_input_files("#mask-file", str(mask))
            page.wait_for_function("document.getElementById('status').textContent.includes('loaded')")
            page.click("#inpaint")
            page.wait_for_function("document.getElementById('status').dataset.state === 'done'")
            if args.hold_original:
                page.keyboard.down(" ")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
