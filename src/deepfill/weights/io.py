"""Generator weights as ``.safetensors`` with a JSON model card beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepfill.config import ModelConfig
from deepfill.errors import WeightsError
from deepfill.model.generator import Generator

FORMAT = "deepfill-v1-generator"
BUNDLED_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "deepfill_v1.safetensors"


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_generator(
    generator: Generator, path: str | Path, card: dict[str, Any], dtype: torch.dtype = torch.float16
) -> Path:
    """Write ``path`` (.safetensors) and its model card ``path.json``; returns the weights path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights must end in .safetensors, got {path}")
    config = generator.config.to_dict()
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in generator.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "model_config": json.dumps(config)})
    tmp.chmod(0o644)  # the writer creates its file private
    tmp.replace(path)
    card = {**card, "format": FORMAT, "model_config": config, "dtype": str(dtype).removeprefix("torch.")}
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return path


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card beside ``path``, or an empty dict when there is none."""
    card = card_path(Path(path))
    if not card.exists():
        return {}
    try:
        values = json.loads(card.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"model card {card} is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise WeightsError(f"model card {card} is not a JSON object")
    return values


def load_generator(path: str | Path | None = None) -> tuple[Generator, dict[str, Any]]:
    """Load a generator (on CPU, fp32) and its model card; ``None`` means the bundled weights."""
    path = Path(path) if path is not None else BUNDLED_WEIGHTS
    if not path.is_file():
        if path == BUNDLED_WEIGHTS:
            raise WeightsError("no bundled weights in this installation; pass --weights FILE")
        raise WeightsError(f"weights file not found: {path}")
    try:
        tensors = load_file(str(path), device="cpu")
        with open(path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            metadata = json.loads(fh.read(header_len)).get("__metadata__", {}) or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read weights {path}: not a valid .safetensors file ({exc})") from exc

    card = read_card(path)
    # The weights file's own metadata is the truth; the card beside it is a fallback.
    try:
        config_values = json.loads(metadata.get("model_config", "null")) or card.get("model_config") or {}
        if not isinstance(config_values, dict):
            raise ValueError("not a JSON object")
        config = ModelConfig.from_dict(config_values)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"weights {path} carry an unusable model config: {exc}") from None
    with torch.device("meta"):  # shapes only: a hostile config allocates nothing before the check
        skeleton = Generator(config)
    check_state_dict(skeleton, tensors, path)
    nonfinite = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise WeightsError(f"weights {path} hold NaN or infinite values in {len(nonfinite)} tensors "
                           f"(e.g. {nonfinite[0]}): a diverged or damaged export")
    generator = Generator(config)
    generator.load_state_dict({k: v.float() for k, v in tensors.items()})
    return generator.eval(), card


def check_state_dict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path | str) -> None:
    """Raise ``WeightsError`` naming missing, unexpected or misshapen tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    misshapen = [f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
                 for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if misshapen:
        problems.append(f"{len(misshapen)} of the wrong shape (e.g. {misshapen[0]})")
    if problems:
        raise WeightsError(f"{source} is not a DeepFill v1 generator of this configuration: " + "; ".join(problems))
