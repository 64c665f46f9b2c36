"""deepfill: generative image inpainting with contextual attention (DeepFill v1)."""

from deepfill.config import ModelConfig

__all__ = ["Inpainter", "ModelConfig"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Inpainter":  # imported lazily: it pulls in torch
        from deepfill.inpainter import Inpainter

        return Inpainter
    raise AttributeError(name)
