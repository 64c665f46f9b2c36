"""Training: overfitting, exact resume, crash safety, progress and stopping, DDP on CPU."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import photo
from deepfill.config import ModelConfig
from deepfill.training import CHECKPOINT, PREVIOUS_CHECKPOINT, Trainer, TrainConfig, read_checkpoint
from deepfill.weights.io import load_generator

TINY = dict(model=ModelConfig(cnum=4), image_size=96, batch_size=2, critic_steps=1, critic_cnum=4,
            num_workers=0, amp="none", log_every=1, checkpoint_every=1000, image_every=1000, val_every=1000)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(3):
        photo(128, 112, seed=i).save(folder / f"{i}.png")
    return folder


def _records(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if "l1" in json.loads(line)]


def test_tiny_model_overfits_a_fixed_batch(photos, tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(**{**TINY, "model": ModelConfig(cnum=8), "lr": 1e-3, "gan_loss_alpha": 0.0})
    trainer = Trainer(config, photos, tmp_path / "run")
    batch = [trainer.batches.batch(0, 0)]
    # Step 0 every time: the same images and the same masks.
    losses_seen = [(lambda s: s["l1"] + s["ae"])(trainer.train_step(0, batch)) for _ in range(80)]
    first, last = sum(losses_seen[:3]) / 3, sum(losses_seen[-3:]) / 3
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("critic_steps", [1, 2])
def test_resume_continues_exactly(photos, tmp_path, critic_steps):
    config = TrainConfig(**{**TINY, "critic_steps": critic_steps})
    Trainer(config, photos, tmp_path / "straight").fit(4)
    Trainer(config, photos, tmp_path / "interrupted").fit(2)
    Trainer(config, photos, tmp_path / "interrupted", resume=True).fit(4)
    straight = _records(tmp_path / "straight")
    resumed = _records(tmp_path / "interrupted")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(straight[2:], resumed[2:]):
        for key in ("l1", "ae", "g_adv", "d_global", "gp_local"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(os.urandom(len(data)))
    elif how == "keyless":
        torch.save({"weights": torch.zeros(3)}, path)
    elif how == "flipped":
        damaged = bytearray(data)
        for offset in range(len(data) // 3, len(data) // 3 + 20):
            damaged[offset] ^= 0xFF
        path.write_bytes(bytes(damaged))


@pytest.mark.parametrize("how", ["truncated", "empty", "random", "keyless", "flipped"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(photos, tmp_path, how):
    """One warning line and the run resumes from the checkpoint before; with both damaged, one
    error line and no traceback."""
    config = _write_config(tmp_path / "c.toml", checkpoint_every=1)
    run = tmp_path / "run"
    first = subprocess.run(_cli("--data", str(photos), "--out", str(run), "--config", str(config), "--steps", "3"),
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    (run / "checkpoint.pt.tmp").write_bytes(b"left by a killed writer")
    _damage(run / CHECKPOINT, how)
    resumed = subprocess.run(_cli("--data", str(photos), "--out", str(run), "--resume", "--steps", "4"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if "resuming from checkpoint.prev.pt (step 3)" in line]
    assert len(warnings) == 1 and "Traceback" not in resumed.stderr, resumed.stderr
    assert read_checkpoint(run)["step"] == 4 and not (run / "checkpoint.pt.tmp").exists()
    _damage(run / CHECKPOINT, how)
    _damage(run / PREVIOUS_CHECKPOINT, how)
    failed = subprocess.run(_cli("--data", str(photos), "--out", str(run), "--resume", "--steps", "5"),
                            capture_output=True, text=True)
    assert failed.returncode == 2 and "no usable checkpoint" in failed.stderr
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def _cli(*args):
    return [sys.executable, "-m", "deepfill", "train", *args]


def _write_config(path, **extra):
    values = {k: v for k, v in TINY.items() if k != "model"} | extra
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()] + ["[model]", "cnum = 4"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sigkill_leaves_a_loadable_checkpoint(photos, tmp_path):
    config = _write_config(tmp_path / "c.toml", checkpoint_every=1)
    run = tmp_path / "run"
    proc = subprocess.Popen(_cli("--data", str(photos), "--out", str(run), "--config", str(config), "--steps", "1000"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / CHECKPOINT).exists():
            time.sleep(0.2)
        time.sleep(1.5)  # let it write a few more checkpoints, then kill it mid-training
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    state = read_checkpoint(run)
    assert state["step"] >= 1 and set(state) >= {"generator", "opt_g", "opt_d", "local_critic", "config"}
    trainer = Trainer(TrainConfig(**TINY), photos, run, resume=True)  # and training can resume from it
    # The export and the checkpoint agree on the steps behind them, the killed stretch included.
    assert sum(s["steps"] for s in trainer.training_history()) == trainer.step


def test_sigterm_saves_and_resume_flag(photos, tmp_path):
    config = _write_config(tmp_path / "c.toml")
    run = tmp_path / "run"
    proc = subprocess.Popen(_cli("--data", str(photos), "--out", str(run), "--config", str(config), "--steps", "100000"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    step = read_checkpoint(run)["step"]
    assert step >= 1
    generator, card = load_generator(run / "generator.safetensors")
    assert card["steps"] == step and generator.config.cnum == 4
    # Starting again without --resume refuses to clobber the run.
    again = subprocess.run(_cli("--data", str(photos), "--out", str(run), "--steps", "1"), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = subprocess.run(_cli("--data", str(photos), "--out", str(run), "--resume", "--steps", str(step + 1)),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert read_checkpoint(run)["step"] == step + 1


def test_an_error_in_training_ends_the_process(photos, tmp_path):
    """With loader workers running (they ignore SIGTERM), a failing step still lets the process exit."""
    config = _write_config(tmp_path / "c.toml", num_workers=2)
    program = Path(__file__).parent / "fixtures" / "crash_in_step.py"
    result = subprocess.run([sys.executable, str(program), "train", "--data", str(photos), "--out", str(tmp_path / "run"),
                             "--config", str(config), "--steps", "5"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "injected failure in step 1" in result.stderr


@pytest.mark.parametrize("size", [64, 100])
def test_image_sizes_the_generator_cannot_take_are_refused(photos, tmp_path, size):
    with pytest.raises(ValueError, match="multiple of 8 and at least 72"):
        TrainConfig(image_size=size)
    result = subprocess.run(_cli("--data", str(photos), "--out", str(tmp_path / "run"), "--image-size", str(size)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "image_size must be a multiple of 8" in result.stderr
    assert "Traceback" not in result.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_train(program: list[str], photos, tmp_path, steps: int) -> subprocess.CompletedProcess:
    """``program train`` for ``steps`` steps on 2 CPU processes (gloo); the run goes to tmp_path/run."""
    config = _write_config(tmp_path / "c.toml")
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={_free_port()}", *program, "train", "--data", str(photos), "--out", str(tmp_path / "run"),
         "--config", str(config), "--steps", str(steps)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )


def test_ddp_two_processes_on_cpu(photos, tmp_path):
    result = _torchrun_train(["-m", "deepfill"], photos, tmp_path, steps=2)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir() if p.suffix == ".pt") == [CHECKPOINT]  # rank 0 saves, once
    state = read_checkpoint(run)
    assert state["step"] == 2 and state["images_seen"] == 2 * 2 * 2  # steps x ranks x batch


def test_ddp_stops_every_rank_on_a_non_finite_loss_of_one(photos, tmp_path):
    fault = Path(__file__).parent / "fixtures" / "nan_on_rank1.py"
    result = _torchrun_train([str(fault)], photos, tmp_path, steps=4)
    assert result.returncode != 0
    assert result.stderr.count("non-finite loss at step 2") == 2, result.stderr[-3000:]  # both ranks


def test_init_carries_the_training_history(photos, tmp_path):
    config = TrainConfig(**TINY)
    Trainer(config, photos, tmp_path / "first").fit(2)
    second = Trainer(config, photos, tmp_path / "second", init=tmp_path / "first" / "generator.safetensors")
    second.fit(3)
    _, card = load_generator(tmp_path / "second" / "generator.safetensors")
    assert [s["run"] for s in card["training_history"]] == ["first", "second"]
    assert [s["steps"] for s in card["training_history"]] == [2, 3]
    assert card["steps"] == 5 and card["images_seen"] == 5 * 2


def test_automatic_precision_follows_the_device_and_an_emulated_one_is_warned_about(photos, tmp_path, monkeypatch, caplog):
    from deepfill.runtime import has_fast_kernels
    from deepfill.training import precision
    from deepfill.training.precision import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if has_fast_kernels(torch.bfloat16, cpu) else None)
    monkeypatch.setattr(precision, "has_fast_kernels", lambda dtype, device: False)
    assert autocast_dtype("auto", cpu) is None
    Trainer(TrainConfig(**{**TINY, "amp": "bf16"}), photos, tmp_path / "run")
    assert "amp = bf16 on a device that emulates it" in caplog.text


def test_ctrl_c_twice_stops_at_once_keeping_the_last_checkpoint(photos, tmp_path):
    config = _write_config(tmp_path / "c.toml", checkpoint_every=1)
    run = tmp_path / "run"
    program = Path(__file__).parent / "fixtures" / "slow_step.py"
    proc = subprocess.Popen([sys.executable, str(program), "train", "--data", str(photos), "--out", str(run),
                             "--config", str(config), "--steps", "10"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / CHECKPOINT).exists():  # step 1 is saved; step 2 sleeps
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        start = time.time()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        elapsed = time.time() - start
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert code == 130 and elapsed < 10, err
    assert "stopping after step 2" in err and "press Ctrl-C again" in err
    assert f"stopped at once; {run} keeps its checkpoint at step 1" in err
    assert "Traceback" not in err
    assert read_checkpoint(run)["step"] == 1


def test_training_says_what_it_does_from_the_start(photos, tmp_path):
    config = _write_config(tmp_path / "c.toml")
    result = subprocess.run(_cli("--data", str(photos), "--out", str(tmp_path / "run"), "--config", str(config),
                                 "--steps", "2"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"listing the training images in {photos}"
    assert any(line.startswith("training 3 images on 1 x ") and "batches of 2 at 96x96" in line for line in lines)
    assert any(line.startswith("step 1 took ") and "peak memory" in line for line in lines)


def test_cpu_defaults_and_flags_of_the_train_command(photos, tmp_path):
    from deepfill.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "x", "--out", "y"])  # the flags exist
    assert args.checkpoint_every is None and args.critic_steps is None
    run = tmp_path / "run"
    result = subprocess.run(_cli("--data", str(photos), "--out", str(run), "--image-size", "96", "--steps", "1",
                                 "--checkpoint-every", "1", "--amp", "none"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "on a CPU: batches of 4, 1 critic step(s)" in result.stderr
    config = read_checkpoint(run)["config"]
    assert (config["batch_size"], config["critic_steps"], config["checkpoint_every"]) == (4, 1, 1)


def test_image_size_is_checked_against_the_critics_in_the_users_words(photos, tmp_path):
    result = subprocess.run(_cli("--data", str(photos), "--out", str(tmp_path / "run"), "--image-size", "200"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "image_size must be a multiple of 32" in result.stderr and "200" in result.stderr


def test_the_generator_step_leaves_the_critics_gradients_alone(photos, tmp_path):
    """The adversarial term only passes gradients through the critics: after a step their
    gradients are exactly those of their own update."""
    trainer = Trainer(TrainConfig(**TINY), photos, tmp_path / "run")
    after_critic_update = {}
    update = trainer._update

    def recording_update(optimizer, scaler, loss):
        update(optimizer, scaler, loss)
        if optimizer is trainer.opt_d:
            after_critic_update.update({n: p.grad.clone() for n, p in trainer.global_critic.named_parameters()})

    trainer._update = recording_update
    trainer.train_step(0, [trainer.batches.batch(0, i) for i in range(trainer.batches.passes(0))])
    assert after_critic_update
    for name, param in trainer.global_critic.named_parameters():
        assert torch.equal(param.grad, after_critic_update[name]), name
        assert param.requires_grad


def test_val_data_of_a_built_set_is_its_val_split(tmp_path):
    built = tmp_path / "built"
    (built / "train").mkdir(parents=True)
    (built / "val").mkdir()
    for i in range(3):
        photo(128, 112, seed=i).save(built / "train" / f"{i}.png")
    photo(128, 112, seed=9).save(built / "val" / "v.png")
    rows = [f"train,train/{i}.png" for i in range(3)] + ["val,val/v.png"]
    (built / "manifest.csv").write_text("split,file\n" + "\n".join(rows) + "\n")
    trainer = Trainer(TrainConfig(**{**TINY, "val_data": str(built)}), built, tmp_path / "run")
    assert len(trainer.dataset) == 3 and len(trainer.validation.images) == 1
