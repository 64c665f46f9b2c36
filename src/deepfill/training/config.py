"""``TrainConfig``: the training settings, saved in every checkpoint and in the model card."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from deepfill.config import ModelConfig, config_from_dict
from deepfill.model.critics import INPUT_MULTIPLE
from deepfill.model.generator import Generator

# Training crops are a multiple of this: the local critic sees half of one.
CRITIC_SIZE_MULTIPLE = 2 * INPUT_MULTIPLE


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the released v1 configuration (docs/design.md §1)."""

    model: ModelConfig = ModelConfig()
    image_size: int = 256
    batch_size: int = 16
    steps: int = 1_000_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    critic_steps: int = 5
    critic_cnum: int = 64
    pretrain_coarse_steps: int = 0
    gan_loss_alpha: float = 0.001
    l1_loss_alpha: float = 1.2
    ae_loss_alpha: float = 1.2
    coarse_alpha: float = 1.2
    gamma: float = 0.9
    gp_lambda: float = 10.0
    mask_kind: str = "rect"
    max_rectangles: int = 1
    rescale: tuple[float, float] = (1.0, 2.0)
    amp: str = "auto"  # auto | none | bf16 | fp16
    channels_last: bool = False
    seed: int = 0
    num_workers: int = 2
    checkpoint_every: int = 500
    log_every: int = 10
    image_every: int = 500
    val_every: int = 500
    val_data: str | None = None
    val_count: int = 16

    def __post_init__(self) -> None:
        size = self.image_size
        if size % Generator.pad_multiple or size < Generator.min_size:
            raise ValueError(f"image_size must be a multiple of {Generator.pad_multiple} and at least "
                             f"{Generator.min_size}, got {size}")
        if size % CRITIC_SIZE_MULTIPLE:
            raise ValueError(f"image_size must be a multiple of {CRITIC_SIZE_MULTIPLE} (the local critic sees half "
                             f"of it), got {size}")
        for name in ("batch_size", "critic_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        values = dict(values)
        if "model" in values:
            values["model"] = ModelConfig.from_dict(values["model"])
        for key in ("betas", "rescale"):
            if key in values:
                values[key] = tuple(values[key])
        return config_from_dict(cls, values)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Read a .toml or .json file of overrides over the defaults."""
        path = Path(path)
        text = path.read_text()
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return cls.from_dict({**values, **overrides})
