"""Evaluation harness: fixed mask protocols, any ``method(image, mask)`` callable, reports.

Protocols (docs/design.md §4):

* ``bbox256`` — the paper's: short side resized to 256, 256×256 centre crop, one rectangle of
  up to 128×128 with each side shrunk by up to 16 px, at a random position.
* ``free256`` / ``free512`` — free-form holes drawn with ``masks.irregular_mask`` in the style
  of LaMa's thin / medium / thick evaluation masks, cycling thin, medium, thick over the
  images. ``masks.FREE_FORM`` lists the settings; at 512 lengths and widths are doubled.

The mask of image ``i`` comes from ``np.random.default_rng([i, protocol.seed])``, independent
of the image, so every machine evaluates the same holes. Images are taken sorted by name.
Every output is pasted (output·m + input·(1−m)) before scoring, the paper's convention.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from deepfill import masks as masklib
from deepfill.baselines import BASELINES, Method, MethodUnavailable, make_baseline
from deepfill.data import center_crop, list_images
from deepfill.errors import DeepfillError, InputError
from deepfill.masks import FREE_FORM, FREE_FORM_KINDS
from deepfill.metrics import BORDER_BANDS, image_metrics, total_variation

logger = logging.getLogger(__name__)

# deepfill composites with its default (calibrated) blending, deepfill-poisson with all of the
# network's detail, deepfill-noblend pastes the prediction as it is; then the baselines.
DEEPFILL_BLENDS = {"deepfill": "calibrated", "deepfill-poisson": "poisson", "deepfill-noblend": "none"}
METHOD_NAMES = (*DEEPFILL_BLENDS, *BASELINES)
AREA_BINS = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0)  # lower edges in % of the image; last is open
BAND_KEYS = tuple(f"l1_band_{name}" for name, _, _ in BORDER_BANDS)
METRIC_KEYS = ("l1", "l2", "psnr", "tv", "ssim", "l1_hole", "l2_hole", "psnr_hole", *BAND_KEYS)
CSV_FIELDS = ("index", "image", "method", "mask_kind", "hole_area", "area_bin", "seconds", *METRIC_KEYS)


# Table 1 of the paper (Places2 validation, 256×256, one centred-or-random 128×128 box).
PAPER_TABLE1 = (
    ("PatchMatch", 16.1, 3.9, 16.62),
    ("Global&Local", 9.3, 2.2, 18.85),
    ("DeepFill v1", 8.6, 2.1, 18.91),
)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A fixed evaluation setting: crop size, hole kind and the seed of its mask sequence."""

    name: str
    size: int
    kind: str  # "bbox" or "free"
    seed: int
    description: str


PROTOCOLS: dict[str, Protocol] = {
    "bbox256": Protocol(
        "bbox256", 256, "bbox", 2018,
        "256×256 centre crop, one random rectangle up to 128×128 (sides shrunk by up to 16 px)",
    ),
    "free256": Protocol(
        "free256", 256, "free", 256, "256×256 centre crop, free-form thin/medium/thick masks (cycled)"
    ),
    "free512": Protocol(
        "free512", 512, "free", 512, "512×512 centre crop, free-form thin/medium/thick masks (cycled)"
    ),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise InputError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocol_mask(protocol: Protocol | str, index: int) -> tuple[np.ndarray, str]:
    """The hole of image ``index`` under ``protocol``: float32 (size, size) mask, 1 = hole, and its kind."""
    p = get_protocol(protocol) if isinstance(protocol, str) else protocol
    rng = np.random.default_rng([index, p.seed])
    if p.kind == "bbox":
        half = p.size // 2
        mask, _ = masklib.rectangle_mask(rng, p.size, p.size, max_box=(half, half), max_delta=(16, 16))
        return mask, "rect"
    kind = FREE_FORM_KINDS[index % len(FREE_FORM_KINDS)]
    return masklib.free_form_mask(rng, p.size, p.size, kind, scale=p.size // 256), kind


def area_bin(area: float) -> str:
    """The label of the mask-area bin (``"10-20%"``, ..., ``"50%+"``) holding ``area`` percent."""
    label = f"{AREA_BINS[-1]:.0f}%+"
    for lo, hi in zip(AREA_BINS, AREA_BINS[1:]):
        if area < hi:
            return f"{lo:.0f}-{hi:.0f}%"
    return label


def load_crop(path: str | Path, size: int) -> np.ndarray:
    """The image's centre crop after resizing its short side to ``size`` (EXIF orientation applied).

    Returns float32 (size, size, 3) in [0, 1]. Alpha is dropped.
    """
    try:
        return center_crop(path, size).astype(np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc


class DeepfillMethod:
    """The network as a harness method, through ``Inpainter.inpaint_tensor``."""

    def __init__(self, weights: str | Path | None = None, device: str = "auto", dtype: str = "float32",
                 blend: str = "calibrated"):
        try:
            from deepfill.inpainter import Inpainter
        except ImportError as exc:
            raise MethodUnavailable(f"the inpainter is not available: {exc}") from exc
        self.inpainter = Inpainter.from_pretrained(weights, device=device, dtype=dtype, blend=blend)
        card = getattr(self.inpainter, "card", {}) or {}
        self.description = f"deepfill weights: {card.get('name', weights or 'bundled')}, blend {blend}"
        if blend == "calibrated" and self.inpainter.detail_weights is None:
            self.description += " (no detail weights in the card: Poisson blending)"
        if card.get("trained", True) is False:
            self.description += " (untrained placeholder: its scores mean nothing)"

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]  # 1,3,H,W
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]  # 1,1,H,W
        y = self.inpainter.inpaint_tensor(x, m)
        return y[0].detach().float().cpu().permute(1, 2, 0).numpy()

    def warmup(self, image: np.ndarray, mask: np.ndarray) -> None:
        """One untimed run, so the first timed image does not pay for lazy initialisation."""
        self(image, mask)


def build_methods(
    names: Iterable[str], weights: str | Path | None = None, device: str = "auto", dtype: str = "float32"
) -> tuple[dict[str, Method], list[str]]:
    """Build the named methods in order, skipping (with a logged notice) those unavailable here.

    A deepfill that fails to load its weights is skipped when no ``weights`` were given (the
    default model may not be installed) and is an error when they were. Returns the methods
    and notes for the report (skips, which weights).
    """
    methods: dict[str, Method] = {}
    notes: list[str] = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        if name not in METHOD_NAMES:
            raise InputError(f"unknown method {name!r}; choose from {', '.join(METHOD_NAMES)}")
        try:
            if name in DEEPFILL_BLENDS:
                methods[name] = DeepfillMethod(weights, device, dtype, DEEPFILL_BLENDS[name])
            else:
                methods[name] = make_baseline(name)
        except MethodUnavailable as exc:
            notes.append(f"skipped {name}: {exc}")
            logger.warning(notes[-1])
        except DeepfillError as exc:
            if name in DEEPFILL_BLENDS and weights is None:
                notes.append(f"skipped deepfill: {exc}")
                logger.warning(notes[-1])
            else:
                raise
        else:
            description = getattr(methods[name], "description", None)
            if description:
                notes.append(description)
                logger.info(description)
    if not methods:
        raise InputError("none of the requested methods can run here")
    return methods, notes


@dataclasses.dataclass
class EvaluationResult:
    """What one run produced: a row per image × method, plus what the grid and report need."""

    protocol: Protocol
    methods: list[str]
    rows: list[dict[str, Any]]
    gt_tv: list[float]  # TV of each ground-truth crop, for reference
    grid: list[dict[str, np.ndarray]]  # first images: "input", "truth", each method
    notes: list[str] = dataclasses.field(default_factory=list)


def composite(output: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paste ``output`` into the hole: output·m + image·(1−m), clipped to [0, 1]."""
    out = np.asarray(output, dtype=np.float32)
    if out.shape != image.shape:
        raise ValueError(f"method returned shape {out.shape}, expected {image.shape}")
    m = mask[..., None]
    return np.clip(out * m + image * (1.0 - m), 0.0, 1.0).astype(np.float32)


def run_evaluation(
    images: Sequence[str | Path],
    protocol: Protocol,
    methods: dict[str, Method],
    grid_rows: int = 4,
    progress: bool = True,
) -> EvaluationResult:
    """Score every method on every image under ``protocol``; ``images`` in evaluation order."""
    from tqdm.auto import tqdm

    result = EvaluationResult(protocol, list(methods), [], [], [])
    paths = [Path(p) for p in images]
    root = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path()
    warmed: set[str] = set()
    bar = tqdm(paths, desc=f"evaluate {protocol.name}", unit="img", disable=not progress)
    for index, path in enumerate(bar):
        image = load_crop(path, protocol.size)
        mask, kind = protocol_mask(protocol, index)
        masked = image * (1.0 - mask[..., None]) + mask[..., None]  # hole shown white
        result.gt_tv.append(total_variation(image))
        cells = {"input": masked, "truth": image} if index < grid_rows else None
        for name, method in methods.items():
            bar.set_postfix_str(name)
            if name not in warmed and hasattr(method, "warmup"):
                method.warmup(image, mask)
            warmed.add(name)
            start = time.perf_counter()
            raw = method(image * (1.0 - mask[..., None]), mask)
            seconds = time.perf_counter() - start
            output = composite(raw, image, mask)
            scores = image_metrics(output, image, mask)
            row = {
                "index": index,
                "image": path.relative_to(root).as_posix(),
                "method": name,
                "mask_kind": kind,
                "hole_area": scores.pop("hole_area"),
                "seconds": seconds,
                **scores,
            }
            row["area_bin"] = area_bin(row["hole_area"])
            result.rows.append(row)
            if cells is not None:
                cells[name] = output
        if cells is not None:
            result.grid.append(cells)
    return result


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(rows: list[dict[str, Any]], by: str | None = None) -> list[dict[str, Any]]:
    """Mean of every metric and of the seconds per method (and per ``by`` group, if given).

    PSNR is averaged per image, so one identical image makes the mean ``inf``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        key = (row[by], row["method"]) if by else (row["method"],)
        groups.setdefault(key, []).append(row)
    if by == "area_bin":  # bins in ascending order, methods in first-seen order
        order = {area_bin(lo): i for i, lo in enumerate(AREA_BINS)}
        keys = sorted(groups, key=lambda k: order.get(k[0], len(order)))
    elif by:
        firsts = list(dict.fromkeys(k[0] for k in groups))
        keys = sorted(groups, key=lambda k: firsts.index(k[0]))
    else:
        keys = list(groups)
    summary = []
    for key in keys:
        members = groups[key]
        entry: dict[str, Any] = {"method": key[-1], "n": len(members)}
        if by:
            entry[by] = key[0]
        for metric in (*METRIC_KEYS, "seconds", "hole_area"):
            entry[metric] = _mean([float(r.get(metric, math.nan)) for r in members])  # old CSVs lack bands
        summary.append(entry)
    return summary


_COLUMNS = (
    ("ℓ1 %", "l1", "{:.2f}"),
    ("ℓ2 %", "l2", "{:.2f}"),
    ("PSNR", "psnr", "{:.2f}"),
    ("TV %", "tv", "{:.2f}"),
    ("SSIM", "ssim", "{:.4f}"),
    ("hole ℓ1 %", "l1_hole", "{:.2f}"),
    ("hole ℓ2 %", "l2_hole", "{:.2f}"),
    ("hole PSNR", "psnr_hole", "{:.2f}"),
    ("s/img", "seconds", "{:.3f}"),
)


def format_table(summary: list[dict[str, Any]], by: str | None = None) -> str:
    """A Markdown table of ``summarize`` output; infinite PSNR prints as ``inf``."""
    head = ([by.replace("_", " ")] if by else []) + ["method", "n"] + [c[0] for c in _COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in summary:
        cells = ([str(entry[by])] if by else []) + [entry["method"], str(entry["n"])]
        cells += [fmt.format(entry[key]) for _, key, fmt in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_band_table(summary: list[dict[str, Any]]) -> str:
    """Hole ℓ1 per band of distance to the known region, a row per method of ``summarize``."""
    head = ["method", *(f"{name} px" for name, _, _ in BORDER_BANDS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in summary:
        cells = [entry["method"]] + ["–" if math.isnan(entry[key]) else f"{entry[key]:.2f}" for key in BAND_KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paper_table() -> str:
    lines = [
        "Reference only — DeepFill v1 paper, Table 1, **Places2 validation** (not comparable",
        "directly: other photos, unknown exact masks, and the paper does not state its",
        "normalisation; its ℓ1/ℓ2 magnitudes sit nearer our hole-only columns than whole-image ones):",
        "",
        "| method (paper) | ℓ1 % | ℓ2 % | PSNR |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {l1:.1f} | {l2:.1f} | {p:.2f} |" for name, l1, l2, p in PAPER_TABLE1]
    return "\n".join(lines)


def report_markdown(result: EvaluationResult, images_dir: str | Path | None = None) -> str:
    """The text of ``report.md``: overall means, per-bin/per-kind means, the paper's figures."""
    p = result.protocol
    n_images = len(result.gt_tv)
    means = summarize(result.rows)
    parts = [
        f"# deepfill evaluation: {p.name}",
        "",
        f"- images: {n_images}" + (f" from `{images_dir}`" if images_dir else ""),
        f"- protocol: {p.description}; mask seed {p.seed} (image i → rng([i, {p.seed}]))",
        f"- methods: {', '.join(result.methods)}",
        "- metrics on [0, 1] images after pasting the output into the hole: ℓ1 = mean |error| ×100,",
        "  ℓ2 = mean squared error ×100, PSNR in dB, TV = mean |neighbour difference| of the output",
        "  ×100, SSIM (Gaussian 11×11, σ 1.5); \"hole\" columns count hole pixels only.",
        f"- mean TV of the ground-truth crops: {_mean(result.gt_tv):.2f} %",
        *(f"- {note}" for note in result.notes),
        "",
        "## Mean per method",
        "",
        format_table(means),
        "",
        "## Hole ℓ1 % by distance to the known region",
        "",
        "Hole pixels by their distance (px) to the nearest known pixel; each image's band mean,",
        "averaged over the images that have the band. Seams and colour shifts at the border",
        "show in the first columns.",
        "",
        format_band_table(means),
        "",
    ]
    if p.kind == "bbox":
        parts += [_paper_table(), ""]
    else:
        parts += [
            "## Per mask-area bin (% of the image)",
            "",
            format_table(summarize(result.rows, "area_bin"), "area_bin"),
            "",
            "## Per mask kind",
            "",
            "Free-form settings (`masks.irregular_mask` at 256; lengths and widths ×2 at 512): "
            + "; ".join(f"{k}: {FREE_FORM[k]}" for k in FREE_FORM_KINDS),
            "",
            format_table(summarize(result.rows, "mask_kind"), "mask_kind"),
            "",
        ]
    parts += ["Files: `metrics.csv` (a row per image × method), `grid.png`, `l1_vs_area.png`.", ""]
    return "\n".join(parts)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in CSV_FIELDS})


def _to_pil(image: np.ndarray, cell: int) -> Image.Image:
    im = Image.fromarray(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8))
    return im if im.size == (cell, cell) else im.resize((cell, cell), Image.Resampling.LANCZOS)


def write_grid(result: EvaluationResult, path: Path, cell: int = 256) -> bool:
    """Rows = first images; columns = masked input, each method, ground truth. False if empty."""
    if not result.grid:
        return False
    columns = ["input", *result.methods, "truth"]
    cell = min(cell, result.protocol.size)
    header, gap = 20, 4
    width = len(columns) * (cell + gap) - gap
    canvas = Image.new("RGB", (width, header + len(result.grid) * (cell + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(columns):
        draw.text((c * (cell + gap) + 4, 4), name, fill="black")
        for r, cells in enumerate(result.grid):
            canvas.paste(_to_pil(cells[name], cell), (c * (cell + gap), header + r * (cell + gap)))
    canvas.save(path)
    return True


def write_area_plot(result: EvaluationResult, path: Path) -> bool:
    """Scatter of ℓ1 (whole image and hole only) against hole area per method; False without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("skipping %s: matplotlib is not installed (pip install matplotlib)", path.name)
        return False
    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)  # Agg backend without touching pyplot's global state
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "l1", "whole image"), (axes[1], "l1_hole", "hole only")):
        for name in result.methods:
            rows = [r for r in result.rows if r["method"] == name]
            ax.scatter([r["hole_area"] for r in rows], [r[key] for r in rows], s=14, alpha=0.7, label=name)
        ax.set_xlabel("hole area (% of image)")
        ax.set_ylabel("ℓ1 error (%)")
        ax.set_title(f"{result.protocol.name}: ℓ1, {title}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def prepare_out_dir(out: str | Path, overwrite: bool = False) -> Path:
    """Create the report folder; refuse a non-empty one unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"report path exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"report folder {out} is not empty; pass --overwrite to replace its report")
    out.mkdir(parents=True, exist_ok=True)
    return out


def evaluate(
    images_dir: str | Path,
    out_dir: str | Path,
    protocol: str = "bbox256",
    methods: Sequence[str] = METHOD_NAMES,
    limit: int | None = None,
    weights: str | Path | None = None,
    device: str = "auto",
    dtype: str = "float32",
    grid_rows: int = 4,
    overwrite: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Run a whole evaluation and write metrics.csv, report.md, grid.png and l1_vs_area.png."""
    proto = get_protocol(protocol)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    files = list_images(images_dir, split="val")[:limit]
    out = prepare_out_dir(out_dir, overwrite)
    built, notes = build_methods(methods, weights, device, dtype)
    logger.info("evaluating %s on %d images with %s", proto.name, len(files), ", ".join(built))
    result = run_evaluation(files, proto, built, grid_rows=grid_rows, progress=progress)
    result.notes = notes
    write_csv(result.rows, out / "metrics.csv")
    (out / "report.md").write_text(report_markdown(result, images_dir), encoding="utf-8")
    write_grid(result, out / "grid.png")
    write_area_plot(result, out / "l1_vs_area.png")
    return result
