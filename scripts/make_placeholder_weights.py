"""Write the untrained placeholder generator that ships until trained weights exist."""

import torch

from deepfill.config import ModelConfig
from deepfill.model.generator import Generator
from deepfill.weights.io import BUNDLED_WEIGHTS, save_generator

torch.manual_seed(0)
save_generator(
    Generator(ModelConfig()),
    BUNDLED_WEIGHTS,
    {
        "name": "deepfill-v1 (untrained placeholder)",
        "trained": False,
        "description": "Randomly initialised generator (seed 0). It does NOT inpaint plausibly; it exists so "
        "that the tools run end to end until trained weights ship.",
        "images_seen": 0,
        "steps": 0,
    },
)
print(BUNDLED_WEIGHTS)
