"""The training core shared by the image and audio trainers (and the trainers to come).

One step loop, :func:`run_loop`, and what every rate-distortion trainer needs around it:
resumable checkpoints in safetensors (model, Adam moments and step in one file; no pickle), the
learning-rate schedule, warm start from shipped weights, the optimisers, the run clock of chunked
runs (``--seconds``/``--budget``), log records, and data parallelism under ``torchrun``. A trainer
supplies its model, a source of batches, a step function and its export::

    with distributed(device) as dist:
        model = Model().to(dist.device)
        opt = RDOptimizers(model, plan.lr, dist=dist)
        run_loop(model, opt, out_dir, meta, plan, batches=..., step_fn=..., warm=..., dist=dist)

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank holds the whole model, samples its own data
(:meth:`Dist.data_seed`) and averages gradients before each update, so the ranks stay identical;
rank 0 alone prints, logs and writes checkpoints. Without torchrun nothing of this runs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

CHECKPOINT = "checkpoint.safetensors"

# ---- data parallelism -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run: ``rank`` of ``world`` processes, computing on
    ``device``. The default is the single process of a run without torchrun."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Whether this rank prints, logs and writes files (rank 0)."""
        return self.rank == 0

    def data_seed(self, seed: int) -> int:
        """A seed for this rank's data; rank 0 keeps ``seed``, so one process samples as before."""
        return seed + 1_000_003 * self.rank

    def say(self, text: str) -> None:
        """Prints ``text`` on rank 0 only."""
        if self.main:
            print(text, flush=True)

    def average_(self, tensors: Iterable[Tensor | None]) -> None:
        """Replaces each tensor (``None`` skipped) by its mean over the ranks, in place: one
        all-reduce per dtype on a flat copy, rather than one per tensor."""
        ts = [t for t in tensors if t is not None]
        if self.world == 1 or not ts:
            return
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for t in ts:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            torch.distributed.all_reduce(flat)
            flat.div_(self.world)
            for t, part in zip(group, flat.split([t.numel() for t in group]), strict=True):
                t.copy_(part.view_as(t))

    def broadcast_(self, tensors: Iterable[Tensor]) -> None:
        """Overwrites each tensor with rank 0's, in place (a start-up cost: one call per tensor)."""
        if self.world == 1:
            return
        for t in tensors:
            if t.numel():
                torch.distributed.broadcast(t, 0)

    def shared(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (e.g. its clock, so that all ranks agree on the
        learning rate and on when to stop)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(t, 0)
        return float(t)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Runs the body on rank 0 first and on the other ranks after it, e.g. to build a cache
        file once that the others then read."""
        if not self.main:
            torch.distributed.barrier()
        yield
        if self.main and self.world > 1:
            torch.distributed.barrier()


@contextmanager
def distributed(device: str) -> Iterator[Dist]:
    """Joins the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1): gloo on CPU,
    NCCL on CUDA with one GPU per local rank (``device`` becomes ``cuda:LOCAL_RANK``). Yields a
    single-process :class:`Dist` on ``device`` otherwise. Leaves the group on exit if it joined it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Dist(device=device)
        return
    import torch.distributed as td

    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    joined = not td.is_initialized()
    if joined:
        td.init_process_group("nccl" if cuda else "gloo")  # rendezvous from torchrun's env
    try:
        yield Dist(td.get_rank(), td.get_world_size(), device)
    finally:
        if joined:
            td.destroy_process_group()


# ---- checkpoints ------------------------------------------------------------------------------


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Model weights (``model.*``), Adam moments (``opt.exp_avg.*``, ``opt.exp_avg_sq.*``) and
    ``meta`` (JSON, with each parameter's Adam step) in one safetensors file, written atomically."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                tensors[f"opt.exp_avg.{names[id(p)]}"] = st["exp_avg"].contiguous().cpu()
                tensors[f"opt.exp_avg_sq.{names[id(p)]}"] = st["exp_avg_sq"].contiguous().cpu()
                meta.setdefault("opt_step", {})[names[id(p)]] = float(st["step"])
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def save_state(
    path: Path, weights: dict[str, Tensor], prefix: str, opt: torch.optim.Optimizer | None, meta: dict
) -> None:
    """``weights`` (as ``{prefix}.{name}``), the optimiser's per-parameter state by index
    (``opt.{i}.{key}``, unless ``opt`` is None) and ``meta`` (JSON) in one safetensors file, written
    atomically: the checkpoint of a trainer whose optimiser state maps back by index."""
    t = {f"{prefix}.{k}": v.detach().contiguous().clone() for k, v in weights.items()}
    if opt is not None:
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                t[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().contiguous().clone()
    tmp = path.with_suffix(".tmp")
    save_file(t, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def load_state(path: Path, prefix: str) -> tuple[dict, dict[str, Tensor], dict[int, dict[str, Tensor]]]:
    """A :func:`save_state` file: ``(meta, weights, optimiser state by parameter index)``."""
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
        t = {k: f.get_tensor(k) for k in f.keys()}
    n = len(prefix) + 1
    weights = {k[n:]: v for k, v in t.items() if k.startswith(prefix + ".")}
    opt: dict[int, dict[str, Tensor]] = {}
    for k, v in t.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            opt.setdefault(int(i), {})[name] = v
    return meta, weights, opt


def checkpoint_meta(path: Path) -> dict:
    """The JSON ``meta`` of a checkpoint (or of one of its shards)."""
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["meta"])


def load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer | None) -> dict:
    """Loads a :func:`save_checkpoint` file into ``model`` (and the Adam moments into ``opt``,
    unless ``None``); returns its meta."""
    meta = checkpoint_meta(path)
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if opt is not None:
        params = dict(model.named_parameters())
        for name, step in meta.get("opt_step", {}).items():
            p = params[name]
            opt.state[p] = {
                "step": torch.tensor(step),
                "exp_avg": tensors[f"opt.exp_avg.{name}"].to(p.device),
                "exp_avg_sq": tensors[f"opt.exp_avg_sq.{name}"].to(p.device),
            }
    return meta


def load_trained(ckpt: Path, build: Callable[[dict], nn.Module]) -> nn.Module:
    """The model of a checkpoint: ``build(meta)`` makes it (sizes from the meta), then the weights load."""
    model = build(checkpoint_meta(ckpt))
    load_checkpoint(Path(ckpt), model, None)
    return model


def split_checkpoint(ckpt: Path, out_dir: Path, max_bytes: int = 15 << 20) -> list[Path]:
    """Writes the model part of a checkpoint (no optimiser moments) as safetensors shards of at
    most about ``max_bytes`` each, for transports with a per-file size limit."""
    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()["meta"]
    tensors = {k: v for k, v in load_file(str(ckpt)).items() if k.startswith("model.")}
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for k, v in tensors.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += nbytes
    out = []
    for i, part in enumerate(shards):
        path = Path(out_dir) / f"model-{i:02d}-of-{len(shards):02d}.safetensors"
        save_file(part, str(path), metadata={"meta": meta})
        out.append(path)
    return out


def merge_checkpoint(parts: list[Path], out: Path) -> Path:
    """Joins :func:`split_checkpoint` shards into one checkpoint (model only; Adam restarts)."""
    tensors: dict[str, Tensor] = {}
    for part in parts:
        tensors.update(load_file(str(part)))
    meta = checkpoint_meta(parts[0])
    meta.pop("opt_step", None)
    save_file(tensors, str(out), metadata={"meta": json.dumps(meta)})
    return Path(out)


# ---- schedule ---------------------------------------------------------------------------------


class RunClock:
    """When a resumable run stops and how far through its plan it is.

    ``steps``: planned total steps; ``seconds``: wall time of this run; ``budget``: planned wall
    time across every resumed run (``spent`` of it already used by earlier runs). ``now``, where
    given, is this run's elapsed seconds as measured elsewhere (rank 0's, in a data-parallel run).
    """

    def __init__(self, steps: int, seconds: float | None, budget: float | None, spent: float):
        self.steps, self.seconds, self.budget, self.spent = steps, seconds, budget, spent
        self.t0 = time.time()

    def now(self) -> float:
        """Seconds of this run so far."""
        return time.time() - self.t0

    def running(self, step: int, now: float | None = None) -> bool:
        """Whether step ``step`` (0-based, across resumed runs) is still to be trained."""
        now = self.now() if now is None else now
        return (
            step < self.steps
            and (self.seconds is None or now < self.seconds)
            and (self.budget is None or self.spent + now < self.budget)
        )

    def fraction(self, step: int, now: float | None = None) -> float:
        """Progress through the plan (0..1): steps, or the wall-time budget if that is further."""
        now = self.now() if now is None else now
        frac = step / max(self.steps, 1)
        if self.budget:
            return max(frac, (self.spent + now) / self.budget)
        if self.seconds:
            return max(frac, now / self.seconds)
        return frac


def scheduled_lr(lr: float, frac: float, step: int, warmup_until: int | None = None) -> float:
    """Learning rate at ``frac`` (0..1) of the planned run: constant, then a cosine decay to 10 %
    over the last 20 %; after a warm start (``warmup_until``: the step where the prior-only phase
    ends), a linear ramp over 500 steps, since fresh Adam moments meet trained weights."""
    cur = lr if frac < 0.8 else lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (frac - 0.8) / 0.2)))
    if warmup_until is not None:
        cur *= min(1.0, max(0.0, (step - warmup_until + 1) / 500))
    return cur


# ---- warm start -------------------------------------------------------------------------------


def warm_start(model: nn.Module, weights: Path, kind: str = "image-hyperprior") -> int:
    """Starts a training hyperprior model from a shipped weights file of ``kind``: the float
    transforms and gains as stored (GDN parameters through CompressAI's re-parametrisation), the
    hyper-synthesis ``model.h_s`` from its integer twin (:func:`~ncodec.models.int_hyper.dequantize_into`);
    the factorized prior of z is learned afresh. Returns how many tensors were set.

    Raises:
        ModelFileError: not a weights file of ``kind``, or one whose shapes do not fit ``model``.
    """
    from ncodec.models.int_hyper import IntHyperSynthesis, dequantize_into
    from ncodec.models.weights_io import ModelFileError, read_weights

    _, stored = read_weights(Path(weights), kind)
    own = model.state_dict()  # shares storage with the parameters
    modules = dict(model.named_modules())
    n = 0
    with torch.no_grad():
        for key, value in stored.items():
            if not key.startswith("float."):
                continue
            key = key[len("float.") :]
            parent, _, attr = key.rpartition(".")
            mod = modules.get(parent)
            if attr in ("beta", "gamma") and hasattr(mod, f"{attr}_reparam"):
                param = getattr(mod, attr)
                param.copy_(getattr(mod, f"{attr}_reparam").init(value.reshape(param.shape)))
            elif key in own and own[key].shape == value.shape:
                own[key].copy_(value)
            else:
                continue
            n += 1
    try:
        int_hs = IntHyperSynthesis.from_state_tensors(stored)
        dequantize_into(int_hs, model.h_s)
    except ValueError as e:
        raise ModelFileError(f"{weights}: does not fit this model ({e})") from None
    return n + len(int_hs.layers)


# ---- optimisers -------------------------------------------------------------------------------


class RDOptimizers:
    """The optimisers of a hyperprior model: Adam on the model (parameters named ``log_*gain*`` at
    ``gain_lr_scale`` times the rate), Adam on the prior alone for a warm start's warm-up, and Adam
    on the entropy bottleneck's quantiles (its aux loss). Gradients are averaged over the ranks of
    ``dist`` before each update."""

    def __init__(self, model: nn.Module, lr: float, gain_lr_scale: float = 1.0, dist: Dist | None = None):
        self.dist = dist or Dist()
        named = list(model.named_parameters())
        self.main_params = [p for k, p in named if not k.endswith(".quantiles")]
        gains = [p for k, p in named if "log_" in k and "gain" in k]
        if gain_lr_scale == 1.0 or not gains:
            groups: list = self.main_params
        else:
            other = [p for p in self.main_params if all(p is not g for g in gains)]
            groups = [{"params": other}, {"params": gains, "lr_scale": gain_lr_scale}]
        self.main = torch.optim.Adam(groups, lr=lr)
        main_set = set(self.main_params)
        self.prior = torch.optim.Adam(
            [p for k, p in named if k.startswith("entropy_bottleneck.") and p in main_set], lr=1e-3
        )
        self.aux_params = [p for k, p in named if k.endswith(".quantiles")]
        self.aux = torch.optim.Adam(self.aux_params, lr=1e-3)

    def set_lr(self, lr: float) -> None:
        """Sets the main learning rate (times each group's ``lr_scale``)."""
        for g in self.main.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)

    def step(self, model: nn.Module, loss: Tensor, warming: bool) -> Tensor:
        """One update from ``loss`` (only the prior's while ``warming``), then one of the quantiles;
        returns the aux loss (a scalar)."""
        self.main.zero_grad(set_to_none=True)
        self.prior.zero_grad(set_to_none=True)
        loss.backward()
        # all of them, even while warming: the clip below must see the same norm on every rank
        self.dist.average_(p.grad for p in self.main_params)
        torch.nn.utils.clip_grad_norm_(self.main_params, 1.0)
        (self.prior if warming else self.main).step()
        aux = model.aux_loss()
        self.aux.zero_grad(set_to_none=True)
        aux.backward()
        self.dist.average_(p.grad for p in self.aux_params)
        self.aux.step()
        return aux.detach()


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """How long and how fast a run trains; what every trainer's command line shares.

    ``steps``: planned total steps; ``lr``: peak learning rate; ``batch``: examples per step and
    rank; ``device``: ``cpu`` or ``cuda`` (a rank's own GPU under torchrun); ``seconds``: wall time of this
    run; ``budget``: planned wall seconds across resumed runs (decay and stop, for chunked GPU
    runs); ``init``: a shipped weights file that starts a new run, whose first ``warmup`` steps
    train only the hyper-latent prior (learned afresh) before the rest ramps up; ``log_every`` and
    ``ckpt_every`` in steps; ``seed`` of the model's initialisation and of the data.
    """

    steps: int
    lr: float
    batch: int = 8
    device: str = "cpu"
    seconds: float | None = None
    budget: float | None = None
    init: Path | None = None
    warmup: int = 600
    log_every: int = 50
    ckpt_every: int = 200
    seed: int = 0


@dataclass
class Step:
    """What a step function is told: ``index`` (0-based, counting across resumed runs), the
    learning rate ``lr`` already set, and whether only the prior trains (``warming``)."""

    index: int
    lr: float
    warming: bool


@dataclass
class Run:
    """The state of a run that :class:`Hook` methods see. ``last``: this rank's metrics of the
    latest step (not averaged over ranks)."""

    model: nn.Module
    opt: RDOptimizers
    meta: dict
    dist: Dist
    ckpt: Path
    last: dict[str, float] = field(default_factory=dict)


class Hook:
    """Extra work at fixed points of :func:`run_loop`, on every rank; override what you need."""

    def at_start(self, run: Run) -> None:
        """After resume or warm start, once every rank holds the same weights."""

    def after_step(self, run: Run) -> None:
        """After each update (``run.meta["step"]`` already counts it)."""

    def at_end(self, run: Run) -> None:
        """After the final checkpoint is written."""


def start_run(
    model: nn.Module,
    opt: RDOptimizers,
    ckpt: Path,
    meta: dict,
    init: Path | None,
    warmup: int,
    warm: Callable[[nn.Module, Path], int],
    say: Callable[[str], None] = print,
) -> dict:
    """Resumes from ``ckpt`` if it exists, else warm-starts from the weights file ``init`` with
    ``warm(model, init)`` (the prior then trains alone for ``warmup`` steps); returns the run's meta."""
    if ckpt.exists():
        meta = load_checkpoint(ckpt, model, opt.main)
        say(f"resumed at step {meta['step']}")
    elif init is not None:
        meta["init"] = str(init)
        say(f"warm start from {init}: {warm(model, Path(init))} tensors")
        meta["warmup_until"] = warmup
    return meta


def log_record(meta: dict, acc: dict[str, float], count: int, echo: bool = True, **extra) -> None:
    """Appends the means of ``acc`` over ``count`` steps (plus ``extra``) to the history and
    prints it as a JSON line (if ``echo``)."""
    rec = {k: round(v / count, 4) for k, v in acc.items()}
    rec.update(extra)
    meta["history"].append(rec)
    if echo:
        print(json.dumps(rec), flush=True)


def hardware(dist: Dist) -> str:
    """One line on where a run trains, for the checkpoint's meta."""
    gpu = f" ({torch.cuda.get_device_name(dist.device)})" if dist.device.startswith("cuda") else ""
    ranks = f" x {dist.world} ranks" if dist.world > 1 else ""
    return f"{platform.machine()} {dist.device}{gpu} {torch.get_num_threads()} threads{ranks}"


def run_loop(
    model: nn.Module,
    opt: RDOptimizers,
    out_dir: Path,
    meta: dict,
    plan: Plan,
    *,
    batches: Callable[[int], Iterator[Tensor]],
    step_fn: Callable[[Run, Tensor, Step], dict[str, Tensor | float]],
    warm: Callable[[nn.Module, Path], int],
    dist: Dist | None = None,
    notes: dict | None = None,
    log_extra: Callable[[Run], dict] | None = None,
    hooks: Sequence[Hook] = (),
) -> Path:
    """Trains (or resumes) ``model`` until ``plan.steps`` total steps or its wall time is spent;
    returns the checkpoint path (``out_dir/checkpoint.safetensors``).

    ``meta``: the new run's meta (sizes, batch; ``step``, ``seconds`` and ``history`` are added);
    on resume the checkpoint's replaces it. ``batches(seed)``: an endless iterator of input
    batches for this rank. ``step_fn(run, x, step)``: one update on batch ``x`` (forward, loss,
    ``run.opt.step``), returning scalar metrics that the log averages over ``plan.log_every``
    steps. ``warm(model, weights)``: the warm start from ``plan.init``. ``notes``: entries set in
    the meta after start or resume (data source...). ``log_extra(run)``: more log entries.
    """
    dist = dist or Dist()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / CHECKPOINT
    meta = {"step": 0, "seconds": 0.0, "history": [], **meta}
    meta = start_run(model, opt, ckpt, meta, plan.init, plan.warmup, warm, dist.say)
    meta.update(notes or {}, hardware=hardware(dist))
    dist.broadcast_(model.state_dict().values())  # one start, whatever each rank read
    if dist.world > 1:  # own rate levels and quantisation noise on each rank
        torch.manual_seed(dist.data_seed(plan.seed + meta["step"] + 1))
    source = batches(dist.data_seed(plan.seed + meta["step"]))
    run = Run(model, opt, meta, dist, ckpt)
    for h in hooks:
        h.at_start(run)
    clock = RunClock(plan.steps, plan.seconds, plan.budget, float(meta.get("seconds", 0.0)))
    acc: dict[str, float] = {}
    while True:
        now = dist.shared(clock.now())  # rank 0's clock: the same rate and stop on every rank
        step = meta["step"]
        if not clock.running(step, now):
            break
        lr = scheduled_lr(plan.lr, clock.fraction(step, now), step, meta.get("warmup_until"))
        opt.set_lr(lr)
        x = next(source).to(dist.device, non_blocking=True)
        metrics = step_fn(run, x, Step(step, lr, warming=step < meta.get("warmup_until", 0)))
        run.last = {k: float(v.detach() if isinstance(v, Tensor) else v) for k, v in metrics.items()}
        for k, v in run.last.items():
            acc[k] = acc.get(k, 0.0) + v
        meta["step"] = step + 1
        for h in hooks:
            h.after_step(run)
        if meta["step"] % plan.log_every == 0:
            mean_over_ranks(acc, dist)
            extra = {"step": meta["step"], "lr": lr, **(log_extra(run) if log_extra else {})}
            extra["elapsed"] = round(meta["seconds"] + clock.now(), 1)
            log_record(meta, acc, plan.log_every, echo=dist.main, **extra)
            acc = {}
        if meta["step"] % plan.ckpt_every == 0 and dist.main:
            save_checkpoint(ckpt, model, opt.main, dict(meta, seconds=meta["seconds"] + clock.now()))
    meta["seconds"] += clock.now()
    if dist.main:
        save_checkpoint(ckpt, model, opt.main, meta)
    for h in hooks:
        h.at_end(run)
    return ckpt


class Trainer:
    """One medium's part of a run, for :func:`fit`: its model, its data, its step and its warm
    start. A subclass overrides :meth:`build`, :meth:`batches` and :meth:`step`, and what else
    differs from the defaults."""

    gain_lr_scale: float = 1.0  # learning-rate factor of the per-level gains (``log_*gain*``)

    def build(self) -> nn.Module:
        """A fresh model; :func:`fit` seeds torch first and moves it to the run's device."""
        raise NotImplementedError

    def sizes(self) -> dict:
        """What the checkpoint's meta records to rebuild the model (channel counts...)."""
        return {}

    def prepare(self, out_dir: Path, dist: Dist) -> dict:
        """Reads the training data, once per rank, before the loop (``out_dir`` exists, for
        caches); returns notes for the meta (e.g. the data's source)."""
        return {}

    def batches(self, seed: int, size: int) -> Iterator[Tensor]:
        """An endless iterator of ``size``-example batches drawn with ``seed``."""
        raise NotImplementedError

    def step(self, run: Run, x: Tensor, s: Step) -> dict[str, Tensor | float]:
        """One update on batch ``x``: forward, loss, ``run.opt.step``; returns scalar metrics."""
        raise NotImplementedError

    def warm(self, model: nn.Module, weights: Path) -> int:
        """Warm start from a shipped weights file (:func:`warm_start`); returns tensors set."""
        return warm_start(model, weights)

    def log_extra(self, run: Run) -> dict:
        """More entries for each log record."""
        return {}


def fit(trainer: Trainer, out_dir: Path, plan: Plan, hooks: Sequence[Hook] = ()) -> Path:
    """Trains (or resumes) ``trainer``'s model in ``out_dir`` as ``plan`` says, data-parallel
    under torchrun; returns the checkpoint path (``out_dir/checkpoint.safetensors``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with distributed(plan.device) as dist:
        torch.manual_seed(plan.seed)
        model = trainer.build().to(dist.device)
        opt = RDOptimizers(model, plan.lr, trainer.gain_lr_scale, dist)
        notes = trainer.prepare(out_dir, dist)
        return run_loop(
            model,
            opt,
            out_dir,
            {**trainer.sizes(), "batch": plan.batch},
            plan,
            batches=lambda seed: trainer.batches(seed, plan.batch),
            step_fn=trainer.step,
            warm=trainer.warm,
            dist=dist,
            notes=notes,
            log_extra=trainer.log_extra,
            hooks=hooks,
        )


def mean_over_ranks(acc: dict[str, float], dist: Dist) -> None:
    """Replaces each value of ``acc`` by its mean over the ranks (the same keys on every rank)."""
    if dist.world > 1 and acc:
        keys = sorted(acc)
        t = torch.tensor([acc[k] for k in keys], dtype=torch.float64, device=dist.device)
        dist.average_([t])
        acc.update(zip(keys, t.tolist(), strict=True))


# ---- command line -----------------------------------------------------------------------------


def add_run_args(p, *, out: Path, steps: int, lr: float, log_every: int, ckpt_every: int) -> None:
    """Adds the options of :class:`Plan`, the batch size, the device and the thread count to an
    :class:`argparse.ArgumentParser`, with a trainer's defaults."""
    p.add_argument("--out", type=Path, default=out, help="checkpoint folder")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--seconds", type=float, default=None, help="stop after this much wall time")
    p.add_argument(
        "--budget", type=float, default=None, help="planned total seconds across resumed runs (LR decay)"
    )
    p.add_argument("--init", type=Path, default=None, help="start a new run from a shipped weights file")
    p.add_argument("--warmup", type=int, default=600, help="prior-only steps after --init")
    p.add_argument("--batch", type=int, default=8, help="batch per process (per rank under torchrun)")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--log-every", type=int, default=log_every, help="steps between log records")
    p.add_argument("--ckpt-every", type=int, default=ckpt_every, help="steps between checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def plan_from_args(args) -> Plan:
    """The :class:`Plan` of options added by :func:`add_run_args`; applies ``--threads``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return Plan(
        steps=args.steps,
        lr=args.lr,
        batch=args.batch,
        device=args.device,
        seconds=args.seconds,
        budget=args.budget,
        init=args.init,
        warmup=args.warmup,
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        seed=args.seed,
    )


def fit_from_args(trainer: Trainer, args) -> int:
    """:func:`fit` with the :func:`add_run_args` options (``args.out`` and the plan); prints the
    checkpoint path (on rank 0) and returns the exit status."""
    ckpt = fit(trainer, args.out, plan_from_args(args))
    if os.environ.get("RANK", "0") == "0":
        print(f"checkpoint: {ckpt}")
    return 0


def cli_main(argv: list[str] | None, prog: str, doc: str | None, add_args, run) -> int:
    """A trainer's ``main``: parses ``argv`` with ``add_args``'s options and returns ``run(args)``."""
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=doc)
    add_args(p)
    return run(p.parse_args(argv))
