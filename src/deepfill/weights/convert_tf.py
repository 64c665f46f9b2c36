"""Convert the released DeepFill v1 TensorFlow checkpoints into deepfill weights.

The key map is explicit: every generator layer ``L`` is the TF scope ``inpaint_net/L``
(``gen_conv``) or ``inpaint_net/L/L_conv`` for the upsampling layers (``gen_deconv`` nests a
``gen_conv`` named ``L + '_conv'``); critics are ``discriminator/discriminator_{local,global}/
conv1..4`` (``dis_conv``) and ``discriminator/dout_{local,global}_fc`` (``tf.layers.dense``).
Every expected variable must be present with the expected shape. Kernels go HWIO -> OIHW,
dense kernels [in, 1] -> [1, in]. The TF model was trained on BGR images: the image input
channels of the first convolutions and the outputs of the last ones are reordered so that
deepfill feeds RGB.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from deepfill.config import ModelConfig
from deepfill.errors import WeightsError
from deepfill.model.critics import Critic, global_critic, local_critic
from deepfill.model.generator import Generator
from deepfill.weights.io import save_generator
from deepfill.weights.tf_checkpoint import TFCheckpoint

log = logging.getLogger(__name__)

GENERATOR_SCOPE = "inpaint_net"
CRITICS_FORMAT = "deepfill-v1-critics"
# Layers of ``build_inpaint_net`` in graph order (the torch submodule names are the same).
GENERATOR_LAYERS = (
    "conv1", "conv2_downsample", "conv3", "conv4_downsample", "conv5", "conv6",
    "conv7_atrous", "conv8_atrous", "conv9_atrous", "conv10_atrous", "conv11", "conv12",
    "conv13_upsample", "conv14", "conv15_upsample", "conv16", "conv17",
    "xconv1", "xconv2_downsample", "xconv3", "xconv4_downsample", "xconv5", "xconv6",
    "xconv7_atrous", "xconv8_atrous", "xconv9_atrous", "xconv10_atrous",
    "pmconv1", "pmconv2_downsample", "pmconv3", "pmconv4_downsample", "pmconv5", "pmconv6",
    "pmconv9", "pmconv10",
    "allconv11", "allconv12", "allconv13_upsample", "allconv14", "allconv15_upsample", "allconv16", "allconv17",
)
BGR_INPUT_LAYERS = ("conv1", "xconv1", "pmconv1")  # input = [image (BGR), ones, mask]
BGR_OUTPUT_LAYERS = ("conv17", "allconv17")  # output = image (BGR)
CRITIC_CONVS = ("conv1", "conv2", "conv3", "conv4")
# Training-only state a TF1 checkpoint may carry beside the model: never converted.
OPTIMIZER_STATE = re.compile(r"(^|/)(Adam(_\d+)?|Momentum|RMSProp(_\d+)?|ExponentialMovingAverage)$"
                             r"|(^|/)(beta1_power|beta2_power|global_step)(_\d+)?$")
RGB_FROM_BGR = [2, 1, 0]


def _tf_layer_scope(layer: str) -> str:
    if layer.endswith("_upsample"):
        return f"{GENERATOR_SCOPE}/{layer}/{layer}_conv"
    return f"{GENERATOR_SCOPE}/{layer}"


def _torch_layer_prefix(layer: str) -> str:
    return f"{layer}.conv.conv" if layer.endswith("_upsample") else f"{layer}.conv"


def generator_key_map() -> dict[str, str]:
    """deepfill generator state-dict key -> TF variable name, for every parameter."""
    keys = {}
    for layer in GENERATOR_LAYERS:
        keys[f"{_torch_layer_prefix(layer)}.weight"] = f"{_tf_layer_scope(layer)}/kernel"
        keys[f"{_torch_layer_prefix(layer)}.bias"] = f"{_tf_layer_scope(layer)}/bias"
    return keys


def critic_key_map(which: str) -> dict[str, str]:
    """deepfill critic state-dict key -> TF variable name; ``which`` is "local" or "global"."""
    keys = {}
    for conv in CRITIC_CONVS:
        keys[f"{conv}.conv.conv.weight"] = f"discriminator/discriminator_{which}/{conv}/kernel"
        keys[f"{conv}.conv.conv.bias"] = f"discriminator/discriminator_{which}/{conv}/bias"
    keys["dout.weight"] = f"discriminator/dout_{which}_fc/kernel"
    keys["dout.bias"] = f"discriminator/dout_{which}_fc/bias"
    return keys


def tf_shape(torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The TF shape of a deepfill parameter: OIHW -> HWIO, Linear [out, in] -> [in, out]."""
    if len(torch_shape) == 4:
        o, i, h, w = torch_shape
        return (h, w, i, o)
    if len(torch_shape) == 2:
        return (torch_shape[1], torch_shape[0])
    return tuple(torch_shape)


def expected_tf_shapes(model: torch.nn.Module, key_map: dict[str, str]) -> dict[str, tuple[int, ...]]:
    """TF variable name -> the shape ``model`` needs it to have."""
    state = model.state_dict()
    if set(state) != set(key_map):
        raise AssertionError(f"key map out of date: {sorted(set(state) ^ set(key_map))[:3]}")
    return {key_map[k]: tf_shape(tuple(v.shape)) for k, v in state.items()}


def _to_torch(value: np.ndarray) -> torch.Tensor:
    """A TF tensor in deepfill layout, fp32: kernels HWIO -> OIHW, dense [in, out] -> [out, in]."""
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 4:
        value = value.transpose(3, 2, 0, 1)
    elif value.ndim == 2:
        value = value.T
    return torch.from_numpy(np.ascontiguousarray(value))


def _bgr_to_rgb_inputs(weight: torch.Tensor) -> torch.Tensor:
    """Reorder input channels 0..2 (the image) of an OIHW kernel from BGR to RGB."""
    out = weight.clone()
    out[:, 0:3] = weight[:, RGB_FROM_BGR]
    return out


def _read_float(ckpt: TFCheckpoint, name: str) -> np.ndarray:
    entry = ckpt.entries[name]
    if not entry.is_float:
        raise WeightsError(f"{name} in {ckpt.prefix} is {entry.dtype}, expected a floating-point tensor")
    return ckpt.read(name)


def _missing_error(ckpt: TFCheckpoint, missing: list[str], total: int, what: str) -> WeightsError:
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    return WeightsError(f"{ckpt.prefix} lacks {len(missing)} of the {total} {what} variables ({shown})")


def _load_tensors(ckpt: TFCheckpoint, model: torch.nn.Module, key_map: dict[str, str], what: str) -> dict[str, torch.Tensor]:
    """Read and reshape every variable ``model`` needs; errors name missing or misshapen ones."""
    shapes = expected_tf_shapes(model, key_map)
    missing = [name for name in shapes if name not in ckpt]
    if missing:
        raise _missing_error(ckpt, missing, len(shapes), what)
    wrong = [f"{n} is {ckpt.shape(n)}, expected {s}" for n, s in shapes.items() if ckpt.shape(n) != s]
    if wrong:
        raise WeightsError(f"{ckpt.prefix}: {len(wrong)} {what} variables have unexpected shapes ({wrong[0]})")
    return {key: _to_torch(_read_float(ckpt, name)) for key, name in key_map.items()}


def infer_generator_cnum(ckpt: TFCheckpoint) -> int:
    """cnum from ``inpaint_net/conv1/kernel`` [5, 5, 5, cnum]; detects DeepFill v2 checkpoints."""
    conv1, conv2 = f"{GENERATOR_SCOPE}/conv1/kernel", f"{GENERATOR_SCOPE}/conv2_downsample/kernel"
    if conv1 not in ckpt:
        if any(n.startswith(GENERATOR_SCOPE + "/") for n in ckpt.entries):
            raise _missing_error(ckpt, [conv1], 2 * len(GENERATOR_LAYERS), "generator")
        sample = ", ".join(n for n in ckpt.names()[:3])
        raise WeightsError(
            f"{ckpt.prefix} holds no DeepFill generator (no {GENERATOR_SCOPE}/... variables; has e.g. {sample})"
        )
    shape = ckpt.shape(conv1)
    if len(shape) != 4 or shape[:3] != (5, 5, 5):
        raise WeightsError(f"{ckpt.prefix}: {conv1} is {shape}, expected (5, 5, 5, cnum)")
    cnum = shape[3]
    # v2's gated convs emit 2x the channels and split them in half: the next layer sees half.
    if conv2 in ckpt and cnum % 2 == 0 and ckpt.shape(conv2)[2:3] == (cnum // 2,):
        raise WeightsError(
            f"{ckpt.prefix} looks like a DeepFill v2 checkpoint (gated convolutions: {conv1} has {cnum} "
            f"outputs but {conv2} takes {cnum // 2}); deepfill implements v1"
        )
    return cnum


def convert_generator(ckpt: TFCheckpoint) -> Generator:
    """The v1 generator of ``ckpt`` (padding "zeros", as TF "SAME"), RGB in and out."""
    cnum = infer_generator_cnum(ckpt)
    generator = Generator(ModelConfig(cnum=cnum, padding="zeros", resize="align_corners"))
    state = _load_tensors(ckpt, generator, generator_key_map(), "generator")
    for layer in BGR_INPUT_LAYERS:
        key = f"{_torch_layer_prefix(layer)}.weight"
        state[key] = _bgr_to_rgb_inputs(state[key])
    for layer in BGR_OUTPUT_LAYERS:
        for suffix in ("weight", "bias"):
            key = f"{_torch_layer_prefix(layer)}.{suffix}"
            state[key] = state[key][RGB_FROM_BGR].clone()
    generator.load_state_dict(state)
    return generator.eval()


def _critic_shape(ckpt: TFCheckpoint, which: str) -> tuple[int, int]:
    """(cnum, input size) of a critic, from conv1's width and the dense layer's input width."""
    conv1, conv4 = f"discriminator/discriminator_{which}/conv1/kernel", f"discriminator/discriminator_{which}/conv4/kernel"
    dense = f"discriminator/dout_{which}_fc/kernel"
    missing = [n for n in (conv1, conv4, dense) if n not in ckpt]
    if missing:
        if not any(n.startswith("discriminator/") for n in ckpt.entries):
            raise WeightsError(f"{ckpt.prefix} holds no critics (no discriminator/... variables); convert without --critics")
        raise _missing_error(ckpt, missing, 10, f"{which} critic")
    cnum, width, features = ckpt.shape(conv1)[-1], ckpt.shape(conv4)[-1], ckpt.shape(dense)[0]
    side = math.isqrt(features // width) if width else 0
    if not width or side * side * width != features:
        raise WeightsError(f"{ckpt.prefix}: {dense} is {ckpt.shape(dense)}, not [{width} * side^2, 1]")
    return cnum, 16 * side


def convert_critics(ckpt: TFCheckpoint) -> tuple[Critic, Critic]:
    """The (local, global) WGAN critics of ``ckpt``, taking RGB input."""
    critics = []
    for which, build in (("local", local_critic), ("global", global_critic)):
        cnum, size = _critic_shape(ckpt, which)
        critic = build(size, cnum)
        state = _load_tensors(ckpt, critic, critic_key_map(which), f"{which} critic")
        state["conv1.conv.conv.weight"] = state["conv1.conv.conv.weight"][:, RGB_FROM_BGR].clone()
        critic.load_state_dict(state)
        critics.append(critic.eval())
    return critics[0], critics[1]


def critics_path(output: str | Path) -> Path:
    """``OUT.safetensors`` -> ``OUT.critics.safetensors``."""
    output = Path(output)
    return output.with_name(output.name.removesuffix(".safetensors") + ".critics.safetensors")


def save_critics(local: Critic, global_: Critic, path: str | Path, source: str = "") -> Path:
    """Write both critics to one .safetensors file, keys ``local_critic.*`` / ``global_critic.*``."""
    tensors = {f"{name}.{k}": v.detach().to("cpu", torch.float32).contiguous()
               for name, critic in (("local_critic", local), ("global_critic", global_))
               for k, v in critic.state_dict().items()}
    meta = {"format": CRITICS_FORMAT, "source": source,
            "local_critic": json.dumps({"input_size": local.input_size, "cnum": local.conv1.conv.conv.out_channels}),
            "global_critic": json.dumps({"input_size": global_.input_size, "cnum": global_.conv1.conv.conv.out_channels})}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_critics(path: str | Path) -> tuple[Critic, Critic]:
    """Read what :func:`save_critics` wrote: (local, global) critics on CPU, fp32."""
    try:
        tensors = load_file(str(path), device="cpu")
        with open(path, "rb") as fh:
            meta = json.loads(fh.read(int.from_bytes(fh.read(8), "little"))).get("__metadata__") or {}
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"cannot read critics {path}: {exc}") from exc
    if meta.get("format") != CRITICS_FORMAT:
        raise WeightsError(f"{path} is not a deepfill critics file (format {meta.get('format')!r})")
    critics = []
    for name, build in (("local_critic", local_critic), ("global_critic", global_critic)):
        shape = json.loads(meta[name])
        critic = build(shape["input_size"], shape["cnum"])
        prefix = name + "."
        critic.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        critics.append(critic.eval())
    return critics[0], critics[1]


@dataclasses.dataclass
class ConversionResult:
    """What :func:`convert_checkpoint` wrote and skipped."""

    source: Path
    weights: Path
    critics: Path | None
    cnum: int
    parameters: int
    skipped: list[str]


def _unused_variables(ckpt: TFCheckpoint, used: set[str]) -> tuple[list[str], list[str]]:
    """(optimizer state, other unused variables) of ``ckpt``."""
    optimizer, other = [], []
    for name in ckpt.names():
        if name in used:
            continue
        (optimizer if OPTIMIZER_STATE.search(name) else other).append(name)
    return optimizer, other


def convert_checkpoint(
    source: str | Path,
    output: str | Path,
    critics: bool = False,
    overwrite: bool = False,
    dtype: torch.dtype = torch.float32,
    verify_checksums: bool = True,
) -> ConversionResult:
    """Convert a TF v1 checkpoint (prefix, one of its files, or a folder) to ``output``.

    Writes ``output`` (.safetensors) and its model card; with ``critics``, also
    ``OUT.critics.safetensors``. Nothing is written unless the whole conversion succeeds.
    """
    output = Path(output)
    if output.suffix != ".safetensors":
        raise WeightsError(f"output must end in .safetensors, got {output}")
    targets = [output, output.with_suffix(".json")] + ([critics_path(output)] if critics else [])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise WeightsError(f"{existing[0]} exists (pass --overwrite to replace it)")

    ckpt = TFCheckpoint(source, verify_checksums=verify_checksums)
    generator = convert_generator(ckpt)
    used = set(generator_key_map().values())
    critic_pair = None
    if critics:
        critic_pair = convert_critics(ckpt)
        used |= set(critic_key_map("local").values()) | set(critic_key_map("global").values())
    optimizer, other = _unused_variables(ckpt, used)
    if optimizer:
        log.debug("skipped %d optimizer/training variables (e.g. %s)", len(optimizer), optimizer[0])
    unexpected = [n for n in other if n.startswith(GENERATOR_SCOPE + "/")]
    if unexpected:
        log.warning("warning: %d unknown generator variables were not converted (e.g. %s)", len(unexpected), unexpected[0])

    card: dict[str, Any] = {
        "name": f"deepfill-v1 (converted from TensorFlow checkpoint {ckpt.prefix.name})",
        "trained": True,
        "source": {"checkpoint": str(ckpt.prefix.resolve()), "format": "tensorflow-v1-checkpoint",
                   "channel_order": "BGR in the checkpoint; converted to RGB"},
        "parity_notes": (
            "For parity with the released TF code: zero 'SAME' padding (model_config.padding = 'zeros') and "
            "TF nearest-neighbour resizing with align_corners=True (model_config.resize = 'align_corners'). "
            "deepfill's contextual "
            "attention computes the valid-patch mask per sample (TF: from batch element 0) and propagates "
            "scores over a 2-D neighbourhood without row wrap-around, so outputs differ slightly from TF."
        ),
    }
    path = save_generator(generator, output, card, dtype=dtype)
    critics_file = None
    if critic_pair is not None:
        critics_file = save_critics(*critic_pair, critics_path(output), source=str(ckpt.prefix.resolve()))
    parameters = sum(p.numel() for p in generator.parameters())
    log.debug("converted %s: cnum %d, %d generator parameters", ckpt.prefix, generator.config.cnum, parameters)
    return ConversionResult(ckpt.prefix, path, critics_file, generator.config.cnum, parameters, optimizer + other)
