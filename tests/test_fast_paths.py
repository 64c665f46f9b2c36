"""Every fast inference path against the plain fp32 path of the same model."""

import numpy as np
import pytest
import torch

from conftest import photo
from deepfill.inpainter import Inpainter
from deepfill.model.generator import Generator
from deepfill.processing import pad_to_multiple
from deepfill.weights.io import load_generator


@pytest.fixture(scope="module")
def case():
    image = np.asarray(photo(160, 120), np.float32) / 255
    hole = np.zeros((120, 160), bool)
    hole[30:80, 50:120] = True
    return image, hole


def test_bfloat16_stays_close_to_float32(case):
    """Tolerance: mean |Δ| inside the hole below 1 % of the value range, max below 10 %."""
    image, hole = case
    generator, card = load_generator()
    fp32 = Inpainter(generator, card, device="cpu").fill(image, hole)[0]
    generator, card = load_generator()
    bf16 = Inpainter(generator, card, device="cpu", dtype="bfloat16").fill(image, hole)[0]
    diff = np.abs(fp32 - bf16)[hole]
    assert diff.mean() < 0.01 and diff.max() < 0.1, (diff.mean(), diff.max())
    assert np.array_equal(fp32[~hole], bf16[~hole]) and np.array_equal(fp32[~hole], image[~hole])


def test_hole_only_and_chunked_attention_equal_the_plain_path(case, monkeypatch):
    """Restricting and chunking the attention changes no hole pixel (fp32, to 1e-5)."""
    image, hole = case
    generator, _ = load_generator()
    x = torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1
    m = torch.from_numpy(hole)[None, None].float()
    with torch.no_grad():
        _, plain, _ = generator(x, m)
        _, fast, _ = generator(x, m, hole_only=True)
        monkeypatch.setattr("deepfill.model.contextual_attention.MAX_CHUNK_ELEMENTS", 4096)
        _, chunked, _ = Generator.forward(generator, x, m, hole_only=True)
    inside = m.expand_as(plain) > 0
    assert torch.allclose(plain[inside], fast[inside], atol=1e-5)
    assert torch.allclose(fast, chunked, atol=1e-5)


def test_chunking_is_in_effect(monkeypatch):
    """The patched bound really splits the score matrix (guards the test above)."""
    calls = []
    original = torch.bmm
    monkeypatch.setattr("deepfill.model.contextual_attention.MAX_CHUNK_ELEMENTS", 4096)
    monkeypatch.setattr(torch, "bmm", lambda *a: calls.append(1) or original(*a))
    from deepfill.model.contextual_attention import contextual_attention_fast

    f = torch.randn(1, 4, 32, 32)
    contextual_attention_fast(f, f)
    assert len(calls) > 2  # two GEMMs per chunk


def test_channels_last_float32_equals_the_plain_layout(case):
    """The Inpainter's channels-last fp32 weights fill the hole as the plain NCHW network (1e-5)."""
    image, hole = case
    inpainter = Inpainter.from_pretrained(device="cpu")
    assert inpainter.generator.conv3.conv.weight.is_contiguous(memory_format=torch.channels_last)
    fast = inpainter.fill(image, hole, blend="none")[0]
    generator, _ = load_generator()
    x = torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1
    m = torch.from_numpy(hole)[None, None].float()
    xp, mp, _ = pad_to_multiple(x, m, generator.pad_multiple, generator.min_size)
    with torch.no_grad():
        _, plain, _ = generator(xp, mp, hole_only=True)
    height, width = hole.shape
    plain = ((plain[0, :, :height, :width].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
    assert np.abs(fast - plain)[hole].max() < 1e-5
