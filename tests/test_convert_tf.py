"""TF checkpoint reader and converter, without TensorFlow.

``tests/fixtures/tf_v1_small`` was written by TensorFlow (``scripts/make_tf_fixture.py``) with
the released v1 variable names at cnum 2; ``expected.json`` holds values in TF layout. Other
cases use checkpoints written here by a minimal writer of the same format.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfill.cli import main as cli_main
from deepfill.errors import WeightsError
from deepfill.model.critics import global_critic, local_critic
from deepfill.weights.convert_tf import (
    convert_checkpoint,
    critic_key_map,
    critics_path,
    expected_tf_shapes,
    generator_key_map,
    load_critics,
)
from deepfill.weights.io import load_generator
from deepfill.weights.tf_checkpoint import TFCheckpoint, crc32c, mask_crc, read_table

FIXTURE = Path(__file__).parent / "fixtures" / "tf_v1_small"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
RGB = [2, 1, 0]  # BGR index -> RGB index (its own inverse)


# --- a minimal writer of the TF V2 checkpoint format ----------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    body += (0).to_bytes(4, "little") + (1).to_bytes(4, "little")  # one restart point at 0
    return body + b"\0" + mask_crc(crc32c(body + b"\0")).to_bytes(4, "little")


def write_checkpoint(prefix: Path, tensors: dict[str, np.ndarray], checksums: bool = True) -> Path:
    """Write ``tensors`` (float32/float16) as PREFIX.index + PREFIX.data-00000-of-00001."""
    codes = {np.dtype("float32"): 1, np.dtype("float16"): 19}
    data, records = bytearray(), [(b"", _field(1, 1) + _field(3, _field(1, 1)))]  # BundleHeaderProto
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name]).astype(tensors[name].dtype.newbyteorder("<")).tobytes()
        shape = b"".join(_field(2, _field(1, d)) for d in tensors[name].shape)
        entry = _field(1, codes[tensors[name].dtype]) + _field(2, shape) + _field(4, len(data)) + _field(5, len(raw))
        if checksums:
            entry += _varint(6 << 3 | 5) + mask_crc(crc32c(raw)).to_bytes(4, "little")
        records.append((name.encode(), entry))
        data += raw
    data_block = _block(records)
    meta_block = _block([])
    index_block = _block([(records[-1][0], _varint(0) + _varint(len(data_block) - 5))])
    meta_at, index_at = len(data_block), len(data_block) + len(meta_block)
    footer = _varint(meta_at) + _varint(len(meta_block) - 5) + _varint(index_at) + _varint(len(index_block) - 5)
    footer = footer.ljust(40, b"\0") + (0xDB4775248B80FB57).to_bytes(8, "little")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_name(prefix.name + ".index").write_bytes(data_block + meta_block + index_block + footer)
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))
    return prefix


def v1_shapes(c: int, local_size: int = 128, global_size: int = 256, critic_cnum: int = 64) -> dict[str, tuple]:
    """TF variable shapes of the released v1 model, written out independently of the converter."""
    layers = {  # scope: (ksize, in, out), as build_inpaint_net calls gen_conv / gen_deconv
        "conv1": (5, 5, c), "conv2_downsample": (3, c, 2 * c), "conv3": (3, 2 * c, 2 * c),
        "conv4_downsample": (3, 2 * c, 4 * c), "conv13_upsample/conv13_upsample_conv": (3, 4 * c, 2 * c),
        "conv14": (3, 2 * c, 2 * c), "conv15_upsample/conv15_upsample_conv": (3, 2 * c, c),
        "conv16": (3, c, c // 2), "conv17": (3, c // 2, 3),
        "xconv1": (5, 5, c), "xconv2_downsample": (3, c, c), "xconv3": (3, c, 2 * c),
        "xconv4_downsample": (3, 2 * c, 2 * c), "xconv5": (3, 2 * c, 4 * c),
        "pmconv1": (5, 5, c), "pmconv2_downsample": (3, c, c), "pmconv3": (3, c, 2 * c),
        "pmconv4_downsample": (3, 2 * c, 4 * c), "allconv11": (3, 8 * c, 4 * c),
        "allconv13_upsample/allconv13_upsample_conv": (3, 4 * c, 2 * c), "allconv14": (3, 2 * c, 2 * c),
        "allconv15_upsample/allconv15_upsample_conv": (3, 2 * c, c), "allconv16": (3, c, c // 2),
        "allconv17": (3, c // 2, 3),
    }
    for name in ("conv5", "conv6", "conv7_atrous", "conv8_atrous", "conv9_atrous", "conv10_atrous", "conv11",
                 "conv12", "xconv6", "xconv7_atrous", "xconv8_atrous", "xconv9_atrous", "xconv10_atrous",
                 "pmconv5", "pmconv6", "pmconv9", "pmconv10", "allconv12"):
        layers[name] = (3, 4 * c, 4 * c)
    shapes = {}
    for scope, (k, cin, cout) in layers.items():
        shapes[f"inpaint_net/{scope}/kernel"] = (k, k, cin, cout)
        shapes[f"inpaint_net/{scope}/bias"] = (cout,)
    d = critic_cnum
    critics = (("local", (d, 2 * d, 4 * d, 8 * d), local_size), ("global", (d, 2 * d, 4 * d, 4 * d), global_size))
    for which, widths, size in critics:
        cin = 3
        for i, cout in enumerate(widths, 1):
            shapes[f"discriminator/discriminator_{which}/conv{i}/kernel"] = (5, 5, cin, cout)
            shapes[f"discriminator/discriminator_{which}/conv{i}/bias"] = (cout,)
            cin = cout
        shapes[f"discriminator/dout_{which}_fc/kernel"] = (cin * (size // 16) ** 2, 1)
        shapes[f"discriminator/dout_{which}_fc/bias"] = (1,)
    return shapes


def fixture_tensors() -> dict[str, np.ndarray]:
    ckpt = TFCheckpoint(FIXTURE)
    return {n: ckpt.read(n) for n in ckpt.names() if ckpt.entries[n].dtype == "float32"}


# --- the reader -----------------------------------------------------------------------------

def test_reader_lists_and_reads_the_tensorflow_fixture():
    ckpt = TFCheckpoint(FIXTURE / "snap-10")
    assert ckpt.names() == EXPECTED["variables"]
    for item in EXPECTED["values"]:
        assert ckpt.read(item["name"])[tuple(item["index"])] == np.float32(item["value"])
    extras = EXPECTED["extras"]
    assert ckpt.entries["fixture_extras/half"].dtype == "float16"
    np.testing.assert_array_equal(ckpt.read("fixture_extras/half"), np.array(extras["fixture_extras/half"], np.float16))
    np.testing.assert_array_equal(ckpt.read("fixture_extras/double"), extras["fixture_extras/double"])
    np.testing.assert_array_equal(ckpt.read("fixture_extras/bf16"), extras["fixture_extras/bf16"])
    assert int(ckpt.read("global_step")) == extras["global_step"]


@pytest.mark.parametrize("given", ["folder", "snap-10", "snap-10.index", "snap-10.data-00000-of-00001"])
def test_prefix_resolution(given: str):
    path = FIXTURE if given == "folder" else FIXTURE / given
    assert TFCheckpoint(path).prefix == FIXTURE / "snap-10"


def test_folder_without_state_file_takes_the_highest_snap(tmp_path: Path):
    for step in (9, 120, 30):
        write_checkpoint(tmp_path / f"snap-{step}", {"x": np.zeros(1, np.float32)})
    assert TFCheckpoint(tmp_path).prefix.name == "snap-120"
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/run/snap-30"\n')
    assert TFCheckpoint(tmp_path).prefix.name == "snap-30"  # named by the state file, found by name


def test_writer_round_trip_float16(tmp_path: Path):
    values = {"a/b": np.arange(6, dtype=np.float16).reshape(2, 3), "a/c": np.float32([1.5])}
    ckpt = TFCheckpoint(write_checkpoint(tmp_path / "snap-1", values))
    assert [k for k, _ in read_table((tmp_path / "snap-1.index").read_bytes())] == [b"", b"a/b", b"a/c"]
    assert ckpt.names() == ["a/b", "a/c"]
    np.testing.assert_array_equal(ckpt.read("a/b"), values["a/b"])
    assert ckpt.read("a/b").dtype == np.float16


# --- conversion -----------------------------------------------------------------------------

def _converted_index(name: str, index: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """Where a TF value lands in deepfill: key and index after transpose and BGR -> RGB."""
    generator = {v: k for k, v in generator_key_map().items()}
    if name in generator:
        key = generator[name]
        layer = key.split(".")[0]
        if len(index) == 4:
            h, w, i, o = index
            if layer in ("conv1", "xconv1", "pmconv1") and i < 3:
                i = RGB[i]
            if layer in ("conv17", "allconv17"):
                o = RGB[o]
            return key, (o, i, h, w)
        return key, (RGB[index[0]],) if layer in ("conv17", "allconv17") else index
    for which in ("local", "global"):
        critic = {v: k for k, v in critic_key_map(which).items()}
        if name in critic:
            key = critic[name]
            if len(index) == 4:
                h, w, i, o = index
                return f"{which}_critic.{key}", (o, RGB[i] if key.startswith("conv1.") else i, h, w)
            if len(index) == 2:
                return f"{which}_critic.{key}", (index[1], index[0])
            return f"{which}_critic.{key}", index
    raise KeyError(name)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "official.safetensors"
    result = convert_checkpoint(FIXTURE, out, critics=True)
    assert result.cnum == EXPECTED["generator_cnum"] == 2
    assert result.critics == critics_path(out) == out.with_name("official.critics.safetensors")
    assert "global_step" in result.skipped and "inpaint_net/conv1/kernel/Adam" in result.skipped
    return out


def test_converted_values_match_the_tensorflow_fixture(converted: Path):
    generator, card = load_generator(converted)
    local, global_ = load_critics(critics_path(converted))
    assert (local.input_size, global_.input_size) == (EXPECTED["local_critic_input"], EXPECTED["global_critic_input"])
    state = {**generator.state_dict(),
             **{f"local_critic.{k}": v for k, v in local.state_dict().items()},
             **{f"global_critic.{k}": v for k, v in global_.state_dict().items()}}
    for item in EXPECTED["values"]:
        key, index = _converted_index(item["name"], tuple(item["index"]))
        assert state[key][index].item() == np.float32(item["value"]), item["name"]
    # Every tensor arrived whole: sums survive transposes and channel reorders.
    maps = {**generator_key_map(), **{f"local_critic.{k}": v for k, v in critic_key_map("local").items()},
            **{f"global_critic.{k}": v for k, v in critic_key_map("global").items()}}
    assert sorted(maps.values()) == sorted(EXPECTED["sums"])
    for key, name in maps.items():
        assert state[key].double().sum().item() == pytest.approx(EXPECTED["sums"][name], abs=1e-5), name


def test_converted_card_and_forward_pass(converted: Path):
    generator, card = load_generator(converted)
    assert card["trained"] is True and card["model_config"]["resize"] == "align_corners"
    assert card["model_config"]["padding"] == "zeros" and card["model_config"]["cnum"] == 2
    assert card["source"]["checkpoint"].endswith("snap-10") and card["dtype"] == "float32"
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 72, 72, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 72, 72)
    mask[:, :, 20:44, 16:48] = 1
    with torch.no_grad():
        coarse, refined, _ = generator(x, mask)
    assert refined.shape == coarse.shape == x.shape
    assert torch.isfinite(refined).all() and refined.abs().max() <= 1
    local, global_ = load_critics(critics_path(converted))
    with torch.no_grad():
        assert local(torch.zeros(1, 3, 32, 32)).shape == global_(torch.zeros(1, 3, 64, 64)).shape == (1, 1)


def test_bgr_reordering_is_a_channel_swap(converted: Path):
    """Converted model on RGB == the unpermuted TF weights on BGR, with the output flipped back."""
    generator, _ = load_generator(converted)
    raw = fixture_tensors()
    conv1 = torch.from_numpy(raw["inpaint_net/conv1/kernel"]).permute(3, 2, 0, 1)
    x = torch.randn(1, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    bgr = torch.cat([x[:, [2, 1, 0]], x[:, 3:]], dim=1)
    ours = generator.conv1.conv(generator.conv1.pad(x))
    theirs = torch.nn.functional.conv2d(generator.conv1.pad(bgr), conv1, torch.from_numpy(raw["inpaint_net/conv1/bias"]))
    torch.testing.assert_close(ours, theirs)
    h = torch.randn(1, 1, 8, 8)
    k17 = torch.from_numpy(raw["inpaint_net/conv17/kernel"]).permute(3, 2, 0, 1)
    theirs17 = torch.nn.functional.conv2d(generator.conv17.pad(h), k17, torch.from_numpy(raw["inpaint_net/conv17/bias"]))
    torch.testing.assert_close(generator.conv17(h), theirs17[:, [2, 1, 0]])


def analytic_image(height: int, width: int) -> torch.Tensor:
    """The RGB image ``scripts/make_tf_fixture.py`` fed (as BGR) to TF, here as [1, 3, H, W]."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    rgb = np.stack([0.8 * np.sin(0.3 * i + 0.7 * j + c) for c in range(3)]).astype(np.float32)
    return torch.from_numpy(rgb)[None]


def test_coarse_network_and_critics_match_tensorflow(converted: Path):
    """Stage 1 and both critics reproduce the TF outputs the fixture script stored (RGB in and out)."""
    parity = EXPECTED["parity"]
    generator, _ = load_generator(converted)
    size, (top, bottom, left, right) = parity["size"], parity["hole"]
    mask = torch.zeros(1, 1, size, size)
    mask[:, :, top:bottom, left:right] = 1
    with torch.no_grad():
        coarse = generator.coarse(analytic_image(size, size), mask)
    expected = torch.tensor(parity["coarse_bgr"]).permute(2, 0, 1)[[2, 1, 0]][None]  # HWC BGR -> NCHW RGB
    torch.testing.assert_close(coarse, expected, atol=2e-6, rtol=1e-5)
    local, global_ = load_critics(critics_path(converted))
    with torch.no_grad():
        local_score = local(analytic_image(local.input_size, local.input_size)).item()
        global_score = global_(analytic_image(global_.input_size, global_.input_size)).item()
    assert local_score == pytest.approx(parity["local_score"], abs=1e-5)
    assert global_score == pytest.approx(parity["global_score"], abs=1e-5)


def test_cli_convert_tf(tmp_path: Path, caplog):
    out = tmp_path / "w.safetensors"
    assert cli_main(["convert-tf", str(FIXTURE / "snap-10"), "--output", str(out), "--dtype", "float16"]) == 0
    assert load_generator(out)[1]["dtype"] == "float16" and not critics_path(out).exists()
    assert cli_main(["convert-tf", str(FIXTURE), "--output", str(out)]) == 2  # exists
    assert cli_main(["convert-tf", str(FIXTURE), "--output", str(out), "--overwrite", "--critics"]) == 0
    assert critics_path(out).exists()


def test_cnum32_parameter_counts(tmp_path: Path):
    shapes = v1_shapes(32)
    generator_count = sum(math.prod(s) for n, s in shapes.items() if n.startswith("inpaint_net/"))
    assert generator_count == 3_601_542
    for which, count in (("local", 4_339_329), ("global", 2_733_441)):
        assert sum(math.prod(s) for n, s in shapes.items() if f"_{which}" in n) == count
    # End to end on a zero-filled checkpoint of the released sizes (no checksums: faster).
    write_checkpoint(tmp_path / "snap-0", {n: np.zeros(s, np.float32) for n, s in shapes.items()}, checksums=False)
    result = convert_checkpoint(tmp_path, tmp_path / "out.safetensors", critics=True)
    generator, card = load_generator(result.weights)
    assert card["model_config"]["cnum"] == 32
    assert sum(p.numel() for p in generator.parameters()) == result.parameters == 3_601_542
    local, global_ = load_critics(result.critics)
    assert (local.input_size, global_.input_size) == (128, 256)
    assert sum(p.numel() for p in local.parameters()) == 4_339_329
    assert sum(p.numel() for p in global_.parameters()) == 2_733_441


def test_key_map_shapes_match_the_independent_table():
    from deepfill.config import ModelConfig
    from deepfill.model.generator import Generator

    shapes = v1_shapes(4, local_size=64, global_size=64, critic_cnum=8)
    assert expected_tf_shapes(Generator(ModelConfig(cnum=4)), generator_key_map()) == {
        n: s for n, s in shapes.items() if n.startswith("inpaint_net/")}
    assert expected_tf_shapes(local_critic(64, 8), critic_key_map("local")) == {
        n: s for n, s in shapes.items() if "_local" in n}
    assert expected_tf_shapes(global_critic(64, 8), critic_key_map("global")) == {
        n: s for n, s in shapes.items() if "_global" in n}


# --- errors ---------------------------------------------------------------------------------

def test_deepfill_v2_checkpoint_is_recognised(tmp_path: Path):
    # Gated convs: every conv but the RGB outputs emits twice its width and passes on half.
    tensors = {}
    for name, shape in v1_shapes(4).items():
        if name.startswith("inpaint_net/"):
            gated = not name.split("/")[-2].endswith("17")
            if len(shape) == 4:
                shape = (*shape[:3], shape[3] * (2 if gated else 1))
            else:
                shape = (shape[0] * (2 if gated else 1),)
            tensors[name] = np.zeros(shape, np.float32)
    write_checkpoint(tmp_path / "snap-0", tensors)
    with pytest.raises(WeightsError, match="looks like a DeepFill v2 checkpoint.*deepfill implements v1"):
        convert_checkpoint(tmp_path / "snap-0", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_missing_variables_are_named(tmp_path: Path):
    tensors = fixture_tensors()
    for name in ("inpaint_net/conv5/kernel", "inpaint_net/allconv15_upsample/allconv15_upsample_conv/bias"):
        del tensors[name]
    write_checkpoint(tmp_path / "snap-1", tensors)
    with pytest.raises(WeightsError, match=r"lacks 2 of the 84 generator variables \(inpaint_net/conv5/kernel, "
                                           r"inpaint_net/allconv15_upsample/allconv15_upsample_conv/bias\)"):
        convert_checkpoint(tmp_path / "snap-1", tmp_path / "out.safetensors")


def test_wrong_shape_and_missing_critics(tmp_path: Path):
    tensors = fixture_tensors()
    tensors["inpaint_net/conv6/kernel"] = np.zeros((3, 3, 8, 4), np.float32)
    write_checkpoint(tmp_path / "bad-1", tensors)
    with pytest.raises(WeightsError, match=r"inpaint_net/conv6/kernel is \(3, 3, 8, 4\), expected \(3, 3, 8, 8\)"):
        convert_checkpoint(tmp_path / "bad-1", tmp_path / "out.safetensors")
    generator_only = {n: v for n, v in fixture_tensors().items() if n.startswith("inpaint_net/")}
    write_checkpoint(tmp_path / "gen-1", generator_only)
    with pytest.raises(WeightsError, match=r"no discriminator/\.\.\. variables\); convert without --critics"):
        convert_checkpoint(tmp_path / "gen-1", tmp_path / "out.safetensors", critics=True)
    assert not (tmp_path / "out.safetensors").exists()
    convert_checkpoint(tmp_path / "gen-1", tmp_path / "out.safetensors")  # fine without --critics


def test_not_a_checkpoint(tmp_path: Path):
    with pytest.raises(WeightsError, match="not found"):
        TFCheckpoint(tmp_path / "nothing")
    with pytest.raises(WeightsError, match="no TensorFlow checkpoint"):
        TFCheckpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(WeightsError, match="is not a TensorFlow checkpoint"):
        TFCheckpoint(tmp_path / "model.safetensors")
    (tmp_path / "junk.index").write_bytes(b"x" * 100)
    with pytest.raises(WeightsError, match="not a TensorFlow checkpoint index: bad magic"):
        TFCheckpoint(tmp_path / "junk")
    write_checkpoint(tmp_path / "other-1", {"some/variable": np.zeros(3, np.float32)})
    with pytest.raises(WeightsError, match="holds no DeepFill generator"):
        convert_checkpoint(tmp_path / "other-1", tmp_path / "out.safetensors")


def test_corrupt_or_incomplete_checkpoints(tmp_path: Path):
    for name in ("snap-10.index", "snap-10.data-00000-of-00001"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    data = tmp_path / "snap-10.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    entry = TFCheckpoint(tmp_path).entries["inpaint_net/conv1/kernel"]
    raw[entry.offset + 7] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="checksum mismatch for inpaint_net/conv1/kernel"):
        convert_checkpoint(tmp_path, tmp_path / "out.safetensors")
    data.unlink()
    with pytest.raises(WeightsError, match="data file missing"):
        convert_checkpoint(tmp_path, tmp_path / "out.safetensors")
    index = tmp_path / "snap-10.index"
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0xFF
    index.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="checksum mismatch in the block"):
        TFCheckpoint(tmp_path)
