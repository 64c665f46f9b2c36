import numpy as np
import pytest
from PIL import Image


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth colour gradients plus texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 17.0 + yy / 23.0)], axis=2)
    noise = rng.normal(0, 0.05, (height, width, 3))
    return Image.fromarray((np.clip(base + noise, 0, 1) * 255).astype(np.uint8), "RGB")


def rect_mask(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    mask = np.zeros((height, width), np.uint8)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = 255
    return Image.fromarray(mask, "L")


@pytest.fixture(scope="session")
def inpainter():
    from deepfill.inpainter import Inpainter

    return Inpainter.from_pretrained(device="cpu")
