"""``Trainer``: the generator, both WGAN-GP critics, their optimizers and the loop.

``train_step`` does the critic updates and one generator update on a step's batches
(docs/design.md §1, "Step"); ``fit`` reads the batches through a DataLoader, logs to
``RUN_DIR/metrics.jsonl`` and TensorBoard, validates and checkpoints (rank 0), and stops
cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfill import losses
from deepfill.data import InpaintDataset, ValidationSet, list_images
from deepfill.errors import InputError
from deepfill.masks import Window
from deepfill.model.contextual_attention import flow_to_image
from deepfill.model.critics import global_critic, local_critic
from deepfill.model.generator import Generator
from deepfill.processing import from_model_range, to_model_range
from deepfill.runtime import flush_denormals
from deepfill.training import precision
from deepfill.training.batches import Batch, StepBatches, batch_loader
from deepfill.training.checkpoint import (
    Stretch,
    model_card,
    read_checkpoint,
    remove_stale_files,
    write_checkpoint,
)
from deepfill.training.config import TrainConfig
from deepfill.training.distributed import Dist, all_ranks, unwrap, wrap
from deepfill.weights.io import load_generator, save_generator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module) -> Iterator[None]:
    """Parameters that need no gradient for a while; gradients still flow through to the input."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def crop_boxes(x: torch.Tensor, boxes: list[Window]) -> torch.Tensor:
    """The local-critic crops of a batch: one window (top, left, height, width) per sample."""
    return torch.stack([x[i, :, t : t + h, l : l + w] for i, (t, l, h, w) in enumerate(boxes)])


class Trainer:
    """Owns the models, optimizers and step counter; :meth:`fit` runs the loop.

    ``resume`` continues the run in ``run_dir`` from ``checkpoint`` (a state from
    :func:`read_checkpoint`) or, without one, from what ``read_checkpoint(run_dir)`` finds.
    """

    def __init__(self, config: TrainConfig, data: str | Path, run_dir: str | Path, resume: bool = False,
                 info: Dist | None = None, device: torch.device | None = None, init: str | Path | None = None,
                 checkpoint: dict[str, Any] | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.info = info or Dist()
        self.device = device or torch.device("cpu")
        self.amp = precision.autocast_dtype(config.amp, self.device)
        precision.warn_if_emulated(self.amp, self.device, config.amp)
        self.stop_requested = False
        self._step_started: float | None = None  # while a step runs: when it began
        self._step_seconds = 0.0  # the last step's duration, for the stop message
        flush_denormals()  # a float32 step from trained weights is 2.3x slower with them

        torch.manual_seed(config.seed)
        self.generator = Generator(config.model).to(self.device)
        self.local_critic = local_critic(config.image_size // 2, config.critic_cnum).to(self.device)
        self.global_critic = global_critic(config.image_size, config.critic_cnum).to(self.device)
        if config.channels_last:
            for m in (self.generator, self.local_critic, self.global_critic):
                m.to(memory_format=torch.channels_last)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=config.betas)
        self.opt_d = torch.optim.Adam(
            [*self.local_critic.parameters(), *self.global_critic.parameters()], lr=config.lr, betas=config.betas
        )
        # fp16 needs loss scaling (bf16 does not); disabled scalers pass everything through.
        fp16 = self.amp == torch.float16
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.step = 0
        # Every image drawn from the data, the critic-only batches of adversarial steps included
        # (critic_steps batches per step): what the data was used for, not generator updates.
        self.images_seen = 0
        self.train_seconds = 0.0
        # Earlier stretches of training behind these weights (from --init weights or the checkpoint).
        self.history: list[dict[str, Any]] = []
        self._stretch: Stretch | None = None  # while fit runs
        if resume:
            remove_stale_files(self.run_dir)
            state = checkpoint if checkpoint is not None else read_checkpoint(self.run_dir)
            try:
                self.load_checkpoint(state)
            except (RuntimeError, KeyError, ValueError) as exc:
                reason = (str(exc).strip().splitlines() or [""])[0][:160]
                raise InputError(f"the checkpoint in {self.run_dir} does not fit this run: {reason}") from None
        elif init is not None:
            generator, card = load_generator(init)
            if generator.config != config.model:
                raise ValueError(f"--init weights have model config {generator.config}, the run {config.model}")
            self.generator.load_state_dict(generator.state_dict())
            self.history = list(card.get("training_history", []))
        if self.info.world > 1:
            # Coarse pretraining leaves the refinement network without gradients.
            self.generator = wrap(self.generator, self.device, find_unused_parameters=config.pretrain_coarse_steps > 0)
            self.local_critic = wrap(self.local_critic, self.device)
            self.global_critic = wrap(self.global_critic, self.device)

        if self.info.is_main:
            log.info("listing the training images in %s", data)
        files = list_images(data)
        if not files:
            raise ValueError(f"no training images found in {data}")
        self.dataset = InpaintDataset(files, crop_size=config.image_size, rescale=config.rescale, seed=config.seed)
        self.batches = StepBatches(self.dataset, config, self.info)
        self.validation = None
        if config.val_data and self.info.is_main:
            # A built set (it has manifest.csv) validates on its val split, never on its train one.
            files = list_images(config.val_data, split="val")[: config.val_count]
            self.validation = ValidationSet(files, config.image_size)

    # -- checkpoints --
    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": unwrap(self.generator).state_dict(),
            "local_critic": unwrap(self.local_critic).state_dict(),
            "global_critic": unwrap(self.global_critic).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "step": self.step,
            "images_seen": self.images_seen,
            "train_seconds": self.train_seconds,
            "torch_rng": torch.get_rng_state(),
            "config": self.config.to_dict(),
            # With the stretch in progress: a run killed after this checkpoint keeps its steps.
            "history": json.dumps(self.training_history()),
        }

    def save_checkpoint(self) -> Path:
        """Write the checkpoint (``write_checkpoint``: atomic, the previous one kept), then export
        the generator."""
        path = write_checkpoint(self.run_dir, self.state_dict())
        self.export(self.run_dir / "generator.safetensors")
        return path

    def load_checkpoint(self, state: dict[str, Any]) -> None:
        """Continue from a state read by :func:`read_checkpoint`."""
        unwrap(self.generator).load_state_dict(state["generator"])
        unwrap(self.local_critic).load_state_dict(state["local_critic"])
        unwrap(self.global_critic).load_state_dict(state["global_critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for name, scaler in (("scaler_g", self.scaler_g), ("scaler_d", self.scaler_d)):
            if state.get(name):
                scaler.load_state_dict(state[name])
        self.step, self.images_seen = state["step"], state["images_seen"]
        self.train_seconds = state.get("train_seconds", 0.0)
        self.history = json.loads(state.get("history", "[]"))
        torch.set_rng_state(state["torch_rng"])

    def training_history(self) -> list[dict[str, Any]]:
        """Every stretch of training behind the current weights, the running one last."""
        if self._stretch is None:
            return list(self.history)
        return [*self.history, self._stretch.so_far(self.step, self.images_seen)]

    def export(self, path: Path) -> Path:
        """Save the generator with its model card (``model_card``: steps, images, history)."""
        return save_generator(unwrap(self.generator), path, model_card(self.training_history(), self.config))

    # -- one step --
    def _autocast(self) -> contextlib.AbstractContextManager:
        return precision.autocast(self.amp, self.device)

    def _batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, list[Window], torch.Tensor]:
        """On the device: images in [-1, 1], masks, local-critic windows, discounts."""
        x = to_model_range(batch.images.to(self.device, non_blocking=True))
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        boxes = [Window(*box) for box in batch.boxes.tolist()]
        return x, batch.masks.to(self.device), boxes, batch.discount.to(self.device)

    def _critic_loss(self, real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor, boxes: list,
                     generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """WGAN critic loss plus the hole-masked gradient penalty, for both critics."""
        cfg = self.config
        total = real.new_zeros(())
        stats = {}
        b = real.shape[0]
        for name, critic, r, f, m in (
            ("global", self.global_critic, real, fake, mask),
            ("local", self.local_critic, crop_boxes(real, boxes), crop_boxes(fake, boxes), crop_boxes(mask, boxes)),
        ):
            t = torch.rand(b, 1, 1, 1, generator=generator).to(r.device)
            interpolates = (r + t * (f - r)).detach().requires_grad_(True)
            with self._autocast():
                scores = critic(torch.cat([r, f, interpolates])).float()
            real_s, fake_s, interp_s = scores.split(b)
            loss = losses.wgan_critic_loss(real_s, fake_s)
            gp = losses.gradient_penalty(interp_s, interpolates, m, cfg.gp_lambda, self.scaler_d.get_scale())
            total = total + loss + gp
            stats[f"d_{name}"], stats[f"gp_{name}"] = loss.item(), gp.item()
        return total, stats

    @staticmethod
    def _update(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def train_step(self, step: int, batches: list[Batch]) -> dict[str, float]:
        """One generator update (after ``critic_steps`` critic updates); one batch per pass."""
        cfg = self.config
        rng = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        x, m, boxes, discount = self._batch(batches[-1])
        pretrain = step < cfg.pretrain_coarse_steps
        adversarial = not pretrain and cfg.gan_loss_alpha > 0  # without a GAN loss the critics idle
        stats: dict[str, float] = {}

        # Extra critic updates on their own batches (the released code's 5 critic steps).
        if adversarial:
            for extra in batches[:-1]:
                xe, me, boxes_e, _ = self._batch(extra)
                with torch.no_grad(), self._autocast():
                    _, refined_e, _ = self.generator(xe, me)
                fake_e = refined_e.float() * me + xe * (1 - me)
                d_loss, _ = self._critic_loss(xe, fake_e, me, boxes_e, rng)
                self._update(self.opt_d, self.scaler_d, d_loss)

        with self._autocast():
            if pretrain:
                coarse = unwrap(self.generator).coarse(x, m) if self.info.world == 1 else self.generator(x, m)[0]
                refined = None
            else:
                coarse, refined, _ = self.generator(x, m)
        coarse = coarse.float()
        local = lambda t: crop_boxes(t, boxes)  # noqa: E731
        l1 = cfg.coarse_alpha * losses.discounted_l1(coarse, x, discount)
        ae = cfg.coarse_alpha * losses.known_region_l1(coarse, x, m)
        g_loss = x.new_zeros(())
        if refined is not None:
            refined = refined.float()
            l1 = l1 + losses.discounted_l1(refined, x, discount)
            ae = ae + losses.known_region_l1(refined, x, m)
        if adversarial:
            fake = refined * m + x * (1 - m)
            # Critic update on this batch, then the generator's adversarial loss.
            d_loss, d_stats = self._critic_loss(x, fake.detach(), m, boxes, rng)
            self._update(self.opt_d, self.scaler_d, d_loss)
            stats.update(d_stats)
            # The critics only pass gradients through to the generator here: their own are never
            # used, so they are not computed (nor all-reduced: the DDP wrappers are bypassed).
            global_critic, local_critic = unwrap(self.global_critic), unwrap(self.local_critic)
            with frozen(global_critic, local_critic), self._autocast():
                g_global = global_critic(fake).float()
                g_local = local_critic(local(fake)).float()
            g_loss = losses.wgan_generator_loss(g_global) + losses.wgan_generator_loss(g_local)
        total = cfg.l1_loss_alpha * l1 + cfg.ae_loss_alpha * ae + cfg.gan_loss_alpha * g_loss
        self._update(self.opt_g, self.scaler_g, total)
        stats.update(l1=l1.item(), ae=ae.item(), g_adv=g_loss.item(), g_total=total.item())
        return stats

    # -- validation and images --
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """ℓ1 (%) and PSNR (dB) of the composited output on the fixed validation set."""
        images, masks = self.validation.images, self.validation.masks
        generator = unwrap(self.generator).eval()
        l1s, psnrs = [], []
        for i in range(0, len(images), 8):
            x01, m = images[i : i + 8].to(self.device), masks[i : i + 8].to(self.device)
            _, refined, _ = generator(to_model_range(x01), m)
            out = from_model_range(refined.float()) * m + x01 * (1 - m)
            l1s += (out - x01).abs().flatten(1).mean(1).tolist()
            mse = (out - x01).pow(2).flatten(1).mean(1).clamp_min(1e-10)
            psnrs += (10 * torch.log10(1 / mse)).tolist()
        generator.train()
        return {"val_l1": 100 * float(np.mean(l1s)), "val_psnr": float(np.mean(psnrs))}

    @torch.no_grad()
    def sample_grid(self, batch: Batch) -> torch.Tensor:
        """Rows of (masked input, coarse, refined, attention map, ground truth) in [0, 1]."""
        x, m, _, _ = self._batch(Batch(*(field[:4] for field in batch)))
        generator = unwrap(self.generator).eval()
        coarse, refined, flow = generator(x.float(), m, return_flow=True)
        generator.train()
        size = x.shape[-2:]
        flow_img = torch.nn.functional.interpolate(flow_to_image(flow), size=size, mode="nearest") \
            if flow is not None else torch.ones_like(x)
        tiles = [from_model_range(x * (1 - m)) + m, from_model_range(coarse), from_model_range(refined * m + x * (1 - m)),
                 flow_img, from_model_range(x)]
        rows = torch.cat([torch.cat(list(t.float().clamp(0, 1)), dim=2) for t in tiles], dim=1)
        return rows

    # -- the loop --
    def _request_stop(self, signum: int, _frame: Any) -> None:
        """First Ctrl-C/SIGTERM: end after the running step and save it. Second: stop at once."""
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        if self._step_started is None:
            log.info("stopping: saving a checkpoint")
            return
        left = max(0.0, self._step_seconds - (time.perf_counter() - self._step_started))
        log.info("stopping after step %d (about %.0f s left), then saving it; press Ctrl-C again to stop at once "
                 "(the run keeps its last checkpoint)", self.step + 1, left)

    def fit(self, steps: int | None = None) -> int:
        """Train until ``steps`` (total, counting resumed steps) or a stop signal; returns the step."""
        from tqdm import tqdm

        cfg = self.config
        end = steps if steps is not None else cfg.steps
        loader = batch_loader(self.batches, self.step, cfg.num_workers, pin_memory=self.device.type == "cuda")
        writer = self._writer() if self.info.is_main else None
        previous_handlers = {}
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous_handlers[sig] = signal.signal(sig, self._request_stop)
        batches = iter(loader)
        record = {"run": self.run_dir.name, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "hardware": hardware(self.device, self.info.world), "image_size": cfg.image_size,
                  "batch_size": cfg.batch_size * self.info.world, "adversarial": cfg.gan_loss_alpha > 0,
                  "masks": cfg.mask_kind, "amp": str(self.amp).removeprefix("torch.")}
        self._stretch = Stretch(record, self.step, self.images_seen, time.time())
        if self.info.is_main:
            passes = self.batches.passes(self.step)
            log.info("training %d images on %s: batches of %d at %dx%d, %d batch(es) a step, amp %s; "
                     "the first step also starts the data loader and warms up (Ctrl-C stops and saves)",
                     len(self.dataset), record["hardware"], cfg.batch_size, cfg.image_size, cfg.image_size,
                     passes, record["amp"])
        bar = tqdm(total=end, initial=self.step, unit="step", disable=not self.info.is_main, dynamic_ncols=True)
        self.generator.train()
        last_log = time.perf_counter()
        first_step = self.step + 1
        completed = False
        try:
            while self.step < end and not self.stop_requested:
                self._step_started = step_started = time.perf_counter()
                passes = self.batches.passes(self.step)
                step_batches = [next(batches) for _ in range(passes)]
                started = time.perf_counter()
                stats = self.train_step(self.step, step_batches)
                self.train_seconds += time.perf_counter() - started
                self._step_started, self._step_seconds = None, time.perf_counter() - step_started
                self.step += 1
                self.images_seen += cfg.batch_size * self.info.world * passes
                bar.update(1)
                if self.step == first_step and self.info.is_main:
                    bar.write(f"step {self.step} took {self._step_seconds:.1f} s; peak memory {peak_memory_gb():.1f} GB",
                              file=sys.stderr)
                if not self._all_finite(stats):
                    raise FloatingPointError(f"non-finite loss at step {self.step}: {stats}")
                if not self.info.is_main:
                    continue
                now = time.perf_counter()
                rate = cfg.batch_size * self.info.world * passes / max(now - last_log, 1e-9)
                last_log = now
                bar.set_postfix(img_s=f"{rate:.1f}", l1=f"{stats['l1']:.3f}", ae=f"{stats['ae']:.3f}")
                if self.step % cfg.log_every == 0:
                    self._log(writer, {**stats, "images_per_s": rate})
                if self.validation is not None and self.step % cfg.val_every == 0:
                    self._log(writer, self.validate())
                if writer is not None and self.step % cfg.image_every == 0:
                    writer.add_image("samples", self.sample_grid(step_batches[-1]), self.step)
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
            completed = True
        finally:
            # Shut the loader's workers down here: they ignore SIGTERM (see batch_loader),
            # so if an error left them to the interpreter's exit, it would wait for them forever.
            del batches
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            bar.close()
            self.history = self.training_history()
            self._stretch = None
            # After an error (a non-finite loss, a crash) the last periodic checkpoint stays as it was.
            if completed and self.info.is_main and self.step > 0:
                self.save_checkpoint()
            if writer is not None:
                writer.close()
        return self.step

    def _all_finite(self, stats: dict[str, float]) -> bool:
        """Whether every rank's losses are finite: all ranks stop together rather than some
        waiting forever in the next gradient all-reduce for one that stopped."""
        return all_ranks(all(math.isfinite(v) for v in stats.values()), self.info, self.device)

    def _writer(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed (pip install 'deepfill[train]'); logging to metrics.jsonl only")
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _log(self, writer, values: dict[str, float]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"step": self.step, "images_seen": self.images_seen, **values}) + "\n")
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(key, value, self.step)


def peak_memory_gb() -> float:
    """This process's peak resident memory (Linux and macOS; 0 where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def hardware(device: torch.device, world: int) -> str:
    """A short description such as ``1 x AMD EPYC ... (2 threads)`` or ``8 x NVIDIA H100``."""
    if device.type == "cuda":
        return f"{world} x {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{world} x {name} ({torch.get_num_threads()} threads)"


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
