"""Compositing a prediction into the known pixels: a plain paste, gradient-domain (Poisson)
blending, or Poisson blending with the network's detail weighted by how far it can be trusted.

A plain paste keeps the prediction as it is, so any colour offset between the prediction and
its surroundings shows as a seam along the hole's border. Poisson blending (Pérez et al. 2003;
used for inpainting by Iizuka et al. 2017) keeps the prediction's gradients instead: inside the
hole Ω it finds f with Δf = Δg (g the prediction) and f = image on the known pixels next to Ω.
Writing f = g + c, the correction c is harmonic in Ω and equals image − g on that 1-pixel ring,
so only a Laplace equation is solved; c is smooth, so the fill keeps the prediction's detail.
Image borders inside the hole are free (Neumann) boundaries.

Calibrated blending splits the Poisson fill g + C(image) − C(g) (C: the harmonic function with
the given values on the ring) into the smooth membrane fill C(image), which the known pixels
alone determine, and the network's detail g − C(g), which is zero on the ring. It keeps
w(d)·detail, where w is a model's least-squares weight for pixels at distance d from the known
pixels (measured on training photos and stored in its model card; :class:`DetailWeights`).
w = 1 everywhere is Poisson blending, w = 0 the membrane fill.

The solver: conjugate gradients preconditioned by a multigrid V-cycle (red-black Gauss-Seidel,
Galerkin coarse grids of 2 x 2 aggregates), on each hole's bounding box; docs/compositing.md
has the method and its measurements. It is plain tensor code: it runs on the input's device, a
GPU included, and only the mask's connected-component labels are computed on the CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from deepfill.errors import WeightsError

Blend = Literal["calibrated", "poisson", "none"]
BLENDS: tuple[str, ...] = ("calibrated", "poisson", "none")

# Conjugate-gradient iterations, each preconditioned by one multigrid V-cycle. Measured against
# a sparse direct solve (tests/test_blending.py): six leave a maximum error below 2.5e-3 on
# rectangles, strokes and holes on the image border, under the 8-bit quantisation step (3.9e-3).
ITERATIONS = 6
SMOOTHING_SWEEPS = 1  # red-black Gauss-Seidel sweeps before and after each coarse correction
COARSEST_SIDE = 8  # below this side, Gauss-Seidel sweeps alone: fewer tiny levels, less overhead
COARSEST_SWEEPS = 8
OVERCORRECTION = 1.5  # piecewise-constant prolongation undershoots smooth errors; 1.5 measured best of 1-2


@dataclasses.dataclass(frozen=True)
class DetailWeights:
    """The weight of the network's detail at each distance from the known pixels.

    ``distances`` (increasing, in the network's pixels) and ``weights`` are points of a curve
    linear in log2(distance), constant beyond its ends. A model card holds them as
    ``"detail_weights": {"distances": [...], "weights": [...]}``.
    """

    distances: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.distances or len(self.distances) != len(self.weights):
            raise ValueError("detail weights need as many distances as weights, at least one")
        distances = np.asarray(self.distances, np.float64)
        if not (np.isfinite(distances).all() and distances[0] > 0 and (np.diff(distances) > 0).all()):
            raise ValueError(f"detail-weight distances must be finite, positive and increasing, got {self.distances}")
        if any(not 0 <= w <= 1 for w in self.weights):  # also refuses NaN
            raise ValueError(f"detail weights must lie in [0, 1], got {self.weights}")

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> DetailWeights | None:
        """The card's calibration, or None for a model without one; a malformed one is a WeightsError."""
        entry = card.get("detail_weights")
        if entry is None:
            return None
        try:
            return cls(tuple(map(float, entry["distances"])), tuple(map(float, entry["weights"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"the model card's detail_weights are malformed: {exc}") from None

    def at(self, distance: np.ndarray) -> np.ndarray:
        """The weight at each ``distance`` from the known pixels, in network pixels."""
        log_distance = np.log2(np.maximum(distance, 1e-6))
        return np.interp(log_distance, np.log2(self.distances), self.weights).astype(np.float32)


def composite(
    prediction: torch.Tensor,
    image: torch.Tensor,
    mask: torch.Tensor,
    blend: Blend = "calibrated",
    detail_weights: DetailWeights | None = None,
    distance_scale: float = 1.0,
) -> torch.Tensor:
    """Paste ``prediction`` into the holes of ``image``: [B, C, H, W] tensors, ``mask`` [B, 1, H, W], 1 = hole.

    Known pixels are returned exactly; hole pixels are the prediction (``"none"``), the
    prediction plus the harmonic correction that makes it meet the known ring (``"poisson"``),
    or the membrane fill plus the prediction's detail weighted by ``detail_weights``
    (``"calibrated"``; Poisson when there are none). ``distance_scale`` is network pixels per
    image pixel (< 1 when the network ran on a downscaled copy). The prediction is read inside
    the hole and on the 1-pixel ring around it only.
    """
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    hole = mask > 0.5
    fill = prediction.to(image.dtype)
    if blend == "none" or not bool(hole.any()):
        pass
    elif blend == "poisson" or detail_weights is None:
        fill = fill + harmonic_correction(image.float() - prediction.float(), hole).to(image.dtype)
    else:
        membrane, detail = membrane_and_detail(prediction, image, hole)
        fill = (membrane + _detail_weight(hole, detail_weights, distance_scale) * detail).to(image.dtype)
    return torch.where(hole, fill, image)


def membrane_and_detail(prediction: torch.Tensor, image: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The membrane fill C(image) and the prediction's detail g − C(g), float32, over the holes.

    C reads only the known ring, so whatever ``image`` holds in the holes is ignored. One solve
    for both: C is linear, so C(image) and C(prediction) share its operator.
    """
    channels = image.shape[1]
    membranes = harmonic_correction(torch.cat([image.float(), prediction.float()], dim=1), hole)
    return membranes[:, :channels], prediction.float() - membranes[:, channels:]


def _detail_weight(hole: torch.Tensor, detail_weights: DetailWeights, distance_scale: float) -> torch.Tensor:
    """[B, 1, H, W] weights of the detail, from each hole pixel's distance to the known pixels."""
    holes = hole[:, 0].cpu().numpy()
    weight = np.zeros(holes.shape, np.float32)
    for sample, sample_hole in enumerate(holes):
        if sample_hole.all():
            weight[sample] = 1  # no known pixels, no membrane: the prediction is all there is
        elif sample_hole.any():
            distance = ndimage.distance_transform_edt(sample_hole) * distance_scale
            weight[sample] = np.where(sample_hole, detail_weights.at(distance), 0)
    return torch.from_numpy(weight)[:, None].to(hole.device)


def harmonic_correction(boundary: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The function that is harmonic inside ``hole`` and equals ``boundary`` on the known pixels
    next to it; zero outside the hole. ``boundary`` [B, C, H, W] float, ``hole`` [B, 1, H, W] bool.

    Each connected hole is solved on its own bounding box (with its ring), so many small holes
    cost what their boxes cost, not the image; boxes of similar size are solved as one batch.
    A hole without known pixels around it (the whole image) has no boundary condition and gets
    no correction.
    """
    out = torch.zeros_like(boundary)
    height, width = hole.shape[-2:]
    labels, boxes = _components(hole[:, 0].cpu().numpy())
    for group in _size_groups(boxes):
        box_height = max(b[3] - b[1] for b in group)
        box_width = max(b[4] - b[2] for b in group)
        crops, unknowns, edges = [], [], []
        for sample, top, left, _, _, label in group:
            # Grow the box to the group's size, inside the image; other holes inside it stay
            # fixed (they touch this one only diagonally, which the 5-point stencil ignores).
            top, left = min(top, height - box_height), min(left, width - box_width)
            window = (slice(top, top + box_height), slice(left, left + box_width))
            crops.append(boundary[sample, :, window[0], window[1]])
            unknowns.append(torch.from_numpy(labels[sample][window] == label))
            edges.append((top == 0, top + box_height == height, left == 0, left + box_width == width))
        unknown = torch.stack(unknowns)[:, None].to(boundary.device, boundary.dtype)
        ring_values = torch.stack(crops) * (1 - unknown)
        level = _Level.finest(unknown, edges)
        # Known neighbours enter as the right-hand side: diag * x - sum(unknown neighbours' x) = that.
        solution = _preconditioned_cg(level, unknown * _neighbour_sum(ring_values), ITERATIONS) * unknown
        for (sample, top, left, _, _, _), values in zip(group, solution):
            top, left = min(top, height - box_height), min(left, width - box_width)
            out[sample, :, top : top + box_height, left : left + box_width] += values
    return out


def _components(hole: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int, int, int]]]:
    """Labels of the 4-connected holes of each sample [B, H, W], and a box per hole with a known
    pixel: (sample, top, left, bottom, right, label), grown by the 1-pixel ring, inside the image."""
    labels = np.zeros(hole.shape, np.int32)
    boxes = []
    height, width = hole.shape[-2:]
    for sample, sample_hole in enumerate(hole):
        if sample_hole.all():
            continue
        labels[sample], _ = ndimage.label(sample_hole)
        for label, found in enumerate(ndimage.find_objects(labels[sample]), start=1):
            rows, cols = found
            boxes.append((sample, max(0, rows.start - 1), max(0, cols.start - 1),
                          min(height, rows.stop + 1), min(width, cols.stop + 1), label))
    return labels, boxes


def _size_groups(boxes: list[tuple[int, int, int, int, int, int]]) -> list[list[tuple[int, int, int, int, int, int]]]:
    """Boxes grouped by the power of two above each side, so a group's common size wastes < 4x."""
    groups: dict[tuple[int, int], list] = {}
    for box in boxes:
        key = ((box[3] - box[1] - 1).bit_length(), (box[4] - box[2] - 1).bit_length())
        groups.setdefault(key, []).append(box)
    return list(groups.values())


def _preconditioned_cg(level: "_Level", rhs: torch.Tensor, iterations: int) -> torch.Tensor:
    """Solve ``level.apply(x) = rhs`` per sample and channel by conjugate gradients with a V-cycle
    as preconditioner (symmetric, so CG applies); a fixed count, so a GPU never waits on a test."""
    dot = lambda a, b: (a * b).sum(dim=(-2, -1), keepdim=True)  # noqa: E731
    x = torch.zeros_like(rhs)
    residual = rhs
    z = level.v_cycle(residual)
    direction = z
    rz = dot(residual, z)
    for _ in range(iterations):
        applied = level.apply(direction)
        step = rz / dot(direction, applied).clamp_min(1e-30)
        x = x + step * direction
        residual = residual - step * applied
        z = level.v_cycle(residual)
        rz, rz_old = dot(residual, z), rz
        direction = z + (rz / rz_old.clamp_min(1e-30)) * direction
    return x


class _Level:
    """One level of the multigrid hierarchy for ``diag * x - sum over neighbours(coupling * x) = rhs``.

    Every coefficient is [B, 1, h, w]: ``diag``, and ``right``/``down``, the coupling of each
    pixel with its right / lower neighbour (0 where either is not solved for). Coarser levels are
    the Galerkin products Pᵀ A P of the piecewise-constant prolongation P over 2 x 2 blocks, so
    the hole's shape and its boundary condition carry down exactly in the coefficients.
    """

    def __init__(self, diag: torch.Tensor, right: torch.Tensor, down: torch.Tensor) -> None:
        self.diag, self.right, self.down = diag, right, down
        # Couplings with the neighbour above, below, left and right, each [B, 1, h, w].
        self.couplings = (F.pad(down, (0, 0, 1, 0))[..., :-1, :], down, F.pad(right, (1, 0))[..., :-1], right)
        unknown = diag > 0
        self.inverse_diag = torch.where(unknown, 1 / torch.where(unknown, diag, 1), 0)
        height, width = diag.shape[-2:]
        parity = torch.arange(height, device=diag.device)[:, None] + torch.arange(width, device=diag.device)
        self.colours = [unknown & (parity % 2 == c) for c in (0, 1)]
        self.coarser = self._coarsen() if min(height, width) > COARSEST_SIDE else None

    @classmethod
    def finest(cls, unknown: torch.Tensor, image_edges: list[tuple[bool, bool, bool, bool]]) -> "_Level":
        """The 5-point Laplacian on the unknown pixels; ``image_edges`` says for each sample which
        sides (top, bottom, left, right) are the image's, beyond which there is no neighbour."""
        height, width = unknown.shape[-2:]
        exists = torch.ones((len(unknown), 1, height + 2, width + 2), dtype=unknown.dtype)
        for sample_exists, (top, bottom, left, right) in zip(exists, image_edges):
            if top:
                sample_exists[:, 0, :] = 0
            if bottom:
                sample_exists[:, -1, :] = 0
            if left:
                sample_exists[:, :, 0] = 0
            if right:
                sample_exists[:, :, -1] = 0
        exists = exists.to(unknown.device)
        neighbours = exists[..., :-2, 1:-1] + exists[..., 2:, 1:-1] + exists[..., 1:-1, :-2] + exists[..., 1:-1, 2:]
        right = torch.zeros_like(unknown)
        right[..., :, :-1] = unknown[..., :, :-1] * unknown[..., :, 1:]
        down = torch.zeros_like(unknown)
        down[..., :-1, :] = unknown[..., :-1, :] * unknown[..., 1:, :]
        return cls(unknown * neighbours, right, down)

    def _coarsen(self) -> "_Level":
        pad = (0, self.diag.shape[-1] % 2, 0, self.diag.shape[-2] % 2)
        d, r, w = (F.pad(t, pad) for t in (self.diag, self.right, self.down))
        block = lambda t, y, x: t[..., y::2, x::2]  # noqa: E731
        inner = block(r, 0, 0) + block(r, 1, 0) + block(w, 0, 0) + block(w, 0, 1)
        diag = block(d, 0, 0) + block(d, 0, 1) + block(d, 1, 0) + block(d, 1, 1) - 2 * inner
        return _Level(diag, block(r, 0, 1) + block(r, 1, 1), block(w, 1, 0) + block(w, 1, 1))

    def coupled_sum(self, x: torch.Tensor) -> torch.Tensor:
        """sum over the four neighbours of coupling * x."""
        p = F.pad(x, (1, 1, 1, 1))
        up, down, left, right = self.couplings
        total = up * p[..., :-2, 1:-1]
        total.addcmul_(down, p[..., 2:, 1:-1])
        total.addcmul_(left, p[..., 1:-1, :-2])
        return total.addcmul_(right, p[..., 1:-1, 2:])

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.diag * x - self.coupled_sum(x)

    def smooth(self, x: torch.Tensor, rhs: torch.Tensor, colours: list[torch.Tensor]) -> torch.Tensor:
        for colour in colours:
            x = torch.where(colour, (rhs + self.coupled_sum(x)) * self.inverse_diag, x)
        return x

    def v_cycle(self, rhs: torch.Tensor) -> torch.Tensor:
        """One symmetric V-cycle from zero: red-black sweeps down, black-red sweeps up."""
        # From zero, the first half-sweep needs no neighbours: x = rhs / diag on the red pixels.
        x = torch.where(self.colours[0], rhs * self.inverse_diag, 0)
        if self.coarser is None:
            return self.smooth(x, rhs, (self.colours[1:] + self.colours * (COARSEST_SWEEPS - 1)))
        x = self.smooth(x, rhs, self.colours[1:] + self.colours * (SMOOTHING_SWEEPS - 1))
        residual = rhs - self.apply(x)
        pad = (0, rhs.shape[-1] % 2, 0, rhs.shape[-2] % 2)
        coarse_rhs = 4 * F.avg_pool2d(F.pad(residual, pad), 2)  # Pᵀ: the sum over each block
        correction = self.coarser.v_cycle(coarse_rhs).repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # P
        x = x + OVERCORRECTION * correction[..., : rhs.shape[-2], : rhs.shape[-1]]
        return self.smooth(x, rhs, self.colours[::-1] * SMOOTHING_SWEEPS)


def _neighbour_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of each pixel's four neighbours, zero beyond the grid."""
    p = F.pad(x, (1, 1, 1, 1))
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
