"""Training: one readable loop for the generator and both WGAN-GP critics (docs/design.md §1).

Single process, or DDP under ``torchrun``. Top to bottom:

- ``config.py``: ``TrainConfig``, the settings (defaults: the released v1 configuration);
- ``distributed.py``: ``Dist`` and ``setup_distributed`` (torchrun), the DDP wrappers;
- ``precision.py``: the autocast dtype a device trains in;
- ``batches.py``: ``StepBatches``, every batch a pure function of (seed, step, pass, rank),
  and the DataLoader that makes them in worker processes;
- ``checkpoint.py``: sealed, atomic checkpoints and the training history of the model card;
- ``trainer.py``: ``Trainer``: models, optimizers, ``train_step`` and the loop, ``fit``.
"""

from deepfill.training.checkpoint import CHECKPOINT, PREVIOUS_CHECKPOINT, read_checkpoint
from deepfill.training.config import TrainConfig
from deepfill.training.distributed import Dist, setup_distributed
from deepfill.training.trainer import Trainer, hardware, peak_memory_gb

__all__ = [
    "CHECKPOINT", "PREVIOUS_CHECKPOINT", "Dist", "TrainConfig", "Trainer", "hardware", "peak_memory_gb",
    "read_checkpoint", "setup_distributed",
]
