"""The training core: both trainers run through it on tiny synthetic data, resume where they
stopped, and train data-parallel under torchrun with the ranks in step."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import socket
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ncodec.models import train_core as core

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared: one torch thread, whatever the test before set."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_images(root: Path, count: int = 2) -> Path:
    """``count`` random 80x96 PNGs under ``root``."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def write_wav(path: Path, channels: int, rate: int, seconds: float) -> None:
    """Noise at about -14 dBFS as a 16-bit WAV (the stdlib's writer, so PyAV only reads)."""
    rng = np.random.default_rng(channels)
    x = (0.2 * rng.standard_normal((int(seconds * rate), channels)) * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


def test_image_trainer_trains_then_resumes(tmp_path, capsys):
    from ncodec.models.train import ImageTrainer, main

    data = write_images(tmp_path / "images")
    out = tmp_path / "run"
    tiny = ["--crop", "64", "--batch", "2", "--n", "8", "--m", "8", "--threads", "1"]
    assert main(["--data", str(data), "--out", str(out), "--steps", "2", "--log-every", "1", *tiny]) == 0
    ckpt = out / core.CHECKPOINT
    meta = core.checkpoint_meta(ckpt)
    assert meta["step"] == 2 and len(meta["history"]) == 2 and meta["data"] == str(data)
    assert {"loss", "bpp", "psnr", "aux", "lr"} <= set(meta["history"][-1])
    first = load_file(str(ckpt))

    plan = core.Plan(steps=4, lr=1e-4, batch=2, log_every=1)
    core.fit(ImageTrainer(data, crop=64, n=8, m=8), out, plan)
    assert "resumed at step 2" in capsys.readouterr().out
    meta = core.checkpoint_meta(ckpt)
    assert meta["step"] == 4 and len(meta["history"]) == 4
    # the Adam moments came back: their step counts go on from 2
    assert set(meta["opt_step"].values()) == {4.0}
    again = load_file(str(ckpt))
    assert again.keys() == first.keys()
    assert not torch.equal(again["model.g_a.0.weight"], first["model.g_a.0.weight"])


def test_audio_trainer_decodes_files_and_trains(tmp_path):
    from ncodec.models.train_audio import SEGMENT, AudioTrainer, read_audio

    data = tmp_path / "audio"
    write_wav(data / "speech" / "train" / "a.wav", 1, 16000, 1.5)
    write_wav(data / "music" / "train" / "b.wav", 2, 22050, 1.5)
    x, rate = read_audio(data / "music" / "train" / "b.wav")
    assert x.dtype == np.float32 and x.shape == (2, int(1.5 * 22050)) and rate == 22050
    assert 0.5 < np.abs(x).max() <= 1.0

    out = tmp_path / "run"
    plan = core.Plan(steps=2, lr=3e-4, batch=2, log_every=1)
    ckpt = core.fit(AudioTrainer(data, c=8, m=16, n=8), out, plan)
    meta = core.checkpoint_meta(ckpt)
    assert meta["step"] == 2 and meta["c"] == 8 and meta["batch"] == 2
    rec = meta["history"][-1]
    assert {"loss", "kbps", "rate_err", "aux", "mu"} <= set(rec) and len(rec["mu"]) == 7
    # mono speech, and mid and side of the stereo music, cached at 16 kHz
    with np.load(out / "corpus16k.npz") as z:
        assert sorted(z[k].size for k in z.files) == [SEGMENT + 3520] * 2 + [24000]


def test_checkpoint_format(tmp_path):
    """The tensor names and meta that checkpoints written before this core hold."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = tmp_path / "c.safetensors"
    core.save_checkpoint(path, model, opt, {"step": 1})
    parts = ("model", "opt.exp_avg", "opt.exp_avg_sq")
    assert set(load_file(str(path))) == {f"{p}.0.{n}" for p in parts for n in ("weight", "bias")}
    meta = core.checkpoint_meta(path)
    assert meta == {"step": 1, "opt_step": {"0.weight": 1.0, "0.bias": 1.0}}
    back = torch.nn.Sequential(torch.nn.Linear(3, 2))
    opt2 = torch.optim.Adam(back.parameters())
    core.load_checkpoint(path, back, opt2)
    assert torch.equal(back[0].weight, model[0].weight)
    assert torch.equal(opt2.state[back[0].bias]["exp_avg"], opt.state[model[0].bias]["exp_avg"])
    parts = core.split_checkpoint(path, tmp_path, max_bytes=16)
    merged = core.merge_checkpoint(parts, tmp_path / "m.safetensors")
    assert len(parts) == 2 and set(load_file(str(merged))) == {"model.0.weight", "model.0.bias"}
    assert core.Dist().data_seed(7) == 7 and core.Dist(rank=1, world=2).data_seed(7) != 7


def test_trainers_do_not_import_the_codec():
    for name in ("train_core.py", "train.py", "train_audio.py"):
        tree = ast.parse((MODELS / name).read_text())
        mods = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        mods += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in mods if m.startswith(("ncodec.codec", "codec"))], name


class Tiny(torch.nn.Module):
    """A model with work for all three optimisers: the transform, the prior
    (``entropy_bottleneck.*``) and the quantiles (their aux loss)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 8)
        self.entropy_bottleneck = torch.nn.Module()
        self.entropy_bottleneck.scale = torch.nn.Parameter(torch.ones(8))
        self.entropy_bottleneck.quantiles = torch.nn.Parameter(torch.zeros(8, 1, 3))

    def aux_loss(self) -> torch.Tensor:
        return (self.entropy_bottleneck.quantiles - 1).pow(2).sum()


class TinyTrainer(core.Trainer):
    def build(self) -> torch.nn.Module:
        return Tiny()

    def batches(self, seed: int, size: int):
        g = torch.Generator().manual_seed(seed)
        return iter(lambda: torch.randn(size, 8, generator=g), None)

    def step(self, run: core.Run, x: torch.Tensor, s: core.Step) -> dict:
        y = run.model.net(x) * run.model.entropy_bottleneck.scale
        loss = (y - x.flip(1)).pow(2).mean()
        return {"loss": loss, "aux": run.opt.step(run.model, loss, s.warming)}


class Dump(core.Hook):
    """Writes this rank's weights at the start and the end, and its last loss."""

    def __init__(self, out: Path):
        self.out = out

    def at_start(self, run: core.Run) -> None:
        self.start = {f"start.{k}": v.clone() for k, v in run.model.state_dict().items()}

    def at_end(self, run: core.Run) -> None:
        end = {f"end.{k}": v.contiguous() for k, v in run.model.state_dict().items()}
        loss = {"last_loss": torch.tensor(run.last["loss"])}
        save_file({**self.start, **end, **loss}, str(self.out / f"rank{run.dist.rank}.safetensors"))


def _rank(rank: int, out: Path, port: int) -> None:
    """One rank, with the environment torchrun gives its workers; its prints go to a log file."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with open(out / f"rank{rank}.log", "w") as log, contextlib.redirect_stdout(log):
        plan = core.Plan(steps=5, lr=1e-2, batch=4, log_every=5, ckpt_every=100)
        core.fit(TinyTrainer(), out / "run", plan, hooks=[Dump(out)])


def test_data_parallel_two_ranks_stay_in_step(tmp_path):
    """Two CPU ranks (gloo) forked from this process: a fresh interpreter per rank (torchrun's
    way) would import torch again, which takes long on this shared machine; the core sees the
    same environment either way."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # its first use imports torch._dynamo: once, here
    with socket.socket() as s:  # a free port on localhost for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = torch.multiprocessing.start_processes(
        _rank, args=(tmp_path, port), nprocs=2, join=False, start_method="fork"
    )
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=2):  # re-raises a rank's exception
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the ranks did not finish in 120 s")
    r0, r1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    names = [k[len("end.") :] for k in r0 if k.startswith("end.")]
    prior = {"entropy_bottleneck.scale", "entropy_bottleneck.quantiles"}
    assert set(names) == {"net.weight", "net.bias", *prior}
    for k in names:
        assert torch.equal(r0[f"start.{k}"], r1[f"start.{k}"]), k
        assert torch.equal(r0[f"end.{k}"], r1[f"end.{k}"]), k
        assert not torch.equal(r0[f"start.{k}"], r0[f"end.{k}"]), k
    # each rank trained on its own data
    assert float(r0["last_loss"]) != float(r1["last_loss"])
    # rank 0 alone logs and writes the checkpoint, which holds the common weights
    logs = [(tmp_path / f"rank{r}.log").read_text().splitlines() for r in (0, 1)]
    assert [[json.loads(line)["step"] for line in log if line.startswith("{")] for log in logs] == [[5], []]
    ckpt = load_file(str(tmp_path / "run" / core.CHECKPOINT))
    assert torch.equal(ckpt["model.net.weight"], r0["end.net.weight"])
    assert "x 2 ranks" in core.checkpoint_meta(tmp_path / "run" / core.CHECKPOINT)["hardware"]
