"""Average the weights of several generator exports of one run (checkpoint averaging).

    python scripts/average_weights.py runs/X/averaged.safetensors runs/X/snapshots/step-*.safetensors

Small batches with Adam leave the weights jittering from one checkpoint to the next; the mean
of the last few is a steadier model. The card is the newest input's, with the averaged steps
noted under ``averaged_steps``; it has no detail weights (the mean is another model: measure
them with ``python -m deepfill.calibration``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deepfill.weights.io import load_generator, save_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args()

    loaded = [load_generator(path) for path in args.inputs]
    loaded.sort(key=lambda pair: pair[1].get("steps", 0))
    generator, card = loaded[-1]
    states = [g.state_dict() for g, _ in loaded]
    generator.load_state_dict({key: torch.stack([s[key].float() for s in states]).mean(0) for key in states[0]})
    card = {**card, "averaged_steps": [c.get("steps") for _, c in loaded]}
    card.pop("detail_weights", None)
    save_generator(generator, args.output, card, dtype=torch.float32)
    print(f"wrote {args.output}: mean of {len(loaded)} exports, steps {card['averaged_steps']}")


if __name__ == "__main__":
    main()
