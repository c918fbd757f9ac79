"""The Learner: one training loop for every task, with freeze/unfreeze fine-tuning and one-cycle schedules.

    learn = Learner(dls, model)
    learn.fine_tune(3)            # 1 frozen epoch, then 3 unfrozen with discriminative learning rates
    learn.validate()              # {"loss": ..., "accuracy": ...}

Everything the loop needs lives on the Learner (`self.history`, `self.stage`, `self.opt`); callbacks see it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch
from torch import nn

from quicklearn.core import distributed as ddp
from quicklearn.core.errors import ConfigError, TrainingError
from quicklearn.core.faults import kill_point
from quicklearn.core.fileio import atomic_path
from quicklearn.core.runtime import tune_cpu_allocator
from quicklearn.data.kinds import TargetKind, get_kind
from quicklearn.train.callbacks.base import Callback, CallbackList
from quicklearn.train.callbacks.checkpoint import Checkpoint
from quicklearn.train.callbacks.history import HistoryLogger
from quicklearn.train.callbacks.progress import ProgressCallback
from quicklearn.train.callbacks.recorder import LRRecorder
from quicklearn.train.metrics import default_metrics, get_metric, greater_is_better
from quicklearn.train.mix import BatchMixer
from quicklearn.train.optim import group_lrs, make_optimizer
from quicklearn.train.schedules import Schedule, constant, flat_cos, momentum_cycle, one_cycle

__all__ = ["Learner", "LRFindResult", "resolve_device", "amp_dtype"]

log = logging.getLogger("quicklearn")

Precision = Literal["auto", "fp32", "bf16", "fp16"]
CHECKPOINT = "checkpoint.pt"


def members_loss(loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], members: int) -> Callable:
    """The loss of a batched ensemble's training output (B, members, ...): `loss_func` over every member's output,
    each against the item's target (the mean over members, as k separate models' losses would average)."""

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_func(out.flatten(0, 1), y.repeat_interleave(members, 0))

    return loss


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) picks CUDA, then Apple's MPS, then the CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device={device!r}: use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no CUDA GPU is available here. Use --device cpu (or auto).")
    return dev


def amp_dtype(precision: "Precision", device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a precision setting on a device (None = full fp32): 'auto' is bf16 on GPUs that
    have it, else fp16, and fp32 off the GPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class LRFindResult:
    suggestion: float
    lrs: list[float]
    losses: list[float]
    plot: Path | None


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


class Learner:
    """Trains `model` on `dls`. `kind` ('single', 'multi', 'regression') picks the loss and default metrics.

    train_bn: BatchNorm weights in frozen groups keep training. freeze_bn_stats: the body's BatchNorm layers
    normalize with their pretrained running statistics and do not update them (right for pretrained bodies).
    mixup, cutmix: Beta alphas for mixing training image batches (0 = off; train/mix.py); the loss gets soft targets.
    distributed: data-parallel training with DistributedDataParallel over the ranks torchrun started (None = when
    launched by torchrun; see quicklearn/core/distributed.py); sync_bn: BatchNorm computes its statistics over the
    global batch (SyncBatchNorm). Only rank 0 prints and writes files.
    """

    def __init__(
        self,
        dls: Any,
        model: nn.Module,
        *,
        loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        metrics: Sequence[str] | None = None,
        monitor: str | None = None,
        opt: str = "adamw",
        wd: float = 0.01,
        train_bn: bool = True,
        freeze_bn_stats: bool = False,
        device: str | torch.device | None = "auto",
        precision: Precision = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        grad_clip: float | None = None,
        grad_accum: int = 1,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | str | None = None,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        path: str | Path | None = None,
        cbs: Sequence[Callback] = (),
        seed: int = 42,
        progress: bool | None = None,
        config: dict | None = None,
        distributed: bool | None = None,
        sync_bn: bool = False,
    ):
        self.dls, self.model = dls, model
        self.kind = dls.kind
        self.target_kind: TargetKind = get_kind(dls.kind)  # its loss, metrics, decoding (data/kinds.py)
        self.distributed = self._setup_distributed(distributed)
        self.device = resolve_device(ddp.device_for_rank(device) if self.distributed else device)
        if self.device.type == "cpu":
            tune_cpu_allocator()  # measured 1.8x faster CPU training; see quicklearn/core/runtime.py
        # channels_last by default on every device: measured on the 2-core CPU (benchmarks/vs_fastai.py' profile),
        # one fwd+bwd at bs 32: lite0 3.34 -> 2.37 s, lite2 2.96 -> 1.86 s, resnet18 3.21 -> 2.51 s, convnext_atto equal.
        self.channels_last = True if channels_last is None else channels_last
        self.sync_bn = bool(sync_bn)
        if self.distributed and self.sync_bn and self.device.type != "cuda":
            raise ConfigError(f"sync_bn=True (training.sync_bn) needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on "
                              f"{self.device.type}. Leave sync_bn off here (each rank then normalizes with its own slice's statistics).")
        if self.distributed and self.sync_bn:
            self.model = model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.dls.to(self.device, channels_last=self.channels_last)
        if self.distributed:
            self.dls.shard(ddp.rank(), ddp.world_size())
        self.compile = compile
        self.forward = torch.compile(self.model) if compile else self.model  # evaluation (and training in one process)
        self.train_forward = self.forward  # training: the DistributedDataParallel wrapper when distributed (_wrap)
        self._ddp: nn.parallel.DistributedDataParallel | None = None
        self.amp_dtype = amp_dtype(precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.metric_names = list(metrics) if metrics is not None else default_metrics(self.kind)
        self.metric_fns = {m: get_metric(m, self.target_kind) for m in self.metric_names}
        unfit = [m for m in self.metric_names if m not in self.target_kind.metrics]
        if unfit:
            raise ConfigError(f"metric {unfit[0]!r} does not fit a {self.kind} target; use {sorted(self.target_kind.metrics)}.")
        self.monitor = monitor or (self.metric_names[0] if self.metric_names else "valid_loss")
        if self.monitor not in (*self.metric_names, "valid_loss", "train_loss"):
            raise ConfigError(f"monitor={self.monitor!r} is not measured; use valid_loss or one of the metrics {self.metric_names}.")
        if isinstance(class_weights, str):
            if class_weights != "balanced":
                raise ConfigError(f"class_weights={class_weights!r}: use 'balanced' or one number per class.")
            class_weights = self.target_kind.balanced_weights(dls.train.targets, len(dls.vocab) if dls.vocab else 0)
        if class_weights is not None and dls.vocab is not None and len(class_weights) != len(dls.vocab):
            raise ConfigError(f"class_weights has {len(class_weights)} values but there are {len(dls.vocab)} classes {list(dls.vocab.classes)}.")
        self.loss_func = loss_func or self._default_loss(label_smoothing, class_weights)
        # a batched ensemble (the tabular model's `members`) returns (B, members, ...) in training: every member
        # is trained on the loss; in evaluation it returns the members' average, scored by loss_func itself
        self.members = int(getattr(model, "members", 1))
        # mixup/cutmix of training batches (alphas; 0 = off): the loss then gets soft targets, see train/mix.py
        self.mixer = BatchMixer(mixup, cutmix, dls.n_out if self.target_kind.classifier else None) if mixup or cutmix else None
        self.lr_scale = 1.0  # multiplies every scheduled lr (ReduceLROnPlateau lowers it); reset at each fit
        self.opt_name, self.wd, self.train_bn, self.freeze_bn_stats = opt, wd, train_bn, freeze_bn_stats
        self.grad_clip, self.grad_accum = grad_clip, max(1, int(grad_accum))
        self.seed = seed
        self.path = Path(path) if path else None
        self.config = dict(config or {})
        self.recorder = LRRecorder()  # every step's learning rate, for the training-curves plot
        self.progress = ProgressCallback(progress if ddp.is_main() else False)
        self.cbs = CallbackList([self.progress, self.recorder])
        if self.path:
            self.cbs.extend([HistoryLogger(self.path), Checkpoint()])
        self.cbs.extend(cbs)
        self._fingerprint: dict[str, Any] | None = None  # of the data, once: a checkpoint records it
        self.opt: torch.optim.Optimizer | None = None
        self.history: list[dict[str, Any]] = []
        self.stage = 0  # counts fit calls: fine_tune's frozen phase is stage 0, its unfrozen phase stage 1
        self.stop_training = False
        self._resume_ckpt: dict | None = None  # the checkpoint a resumed run continues from, until it is used
        self._resume_done = False
        self.n_groups = len(self.model.groups())
        self.frozen_to = 0
        if self.target_kind.standardized and dls.target_stats:
            self.y_mean, self.y_std = dls.target_stats
        else:
            self.y_mean, self.y_std = 0.0, 1.0

    # ---- setup -------------------------------------------------------------------------------
    @staticmethod
    def _setup_distributed(distributed: bool | None) -> bool:
        """Whether to train data-parallel; starts the process group from torchrun's environment when needed."""
        if distributed is False:
            return False
        import torch.distributed as dist

        up = dist.is_available() and dist.is_initialized()
        if not up and (distributed or ddp.launched_by_torchrun()):
            up = ddp.init_from_env()
        if distributed and not up:
            raise ConfigError("distributed=True needs the processes started by torchrun (e.g. `torchrun --nproc_per_node 2 "
                              "--no-python quicklearn train ...`) or a process group already initialized.")
        return up and ddp.world_size() > 1

    def _wrap(self) -> None:
        """(Re)build the DistributedDataParallel wrapper for the parameters that train now (freezing changes
        them, and DDP fixes its set when built); it broadcasts rank 0's weights, so every rank starts equal."""
        if not self.distributed:
            return
        self._ddp = nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.train_forward = torch.compile(self._ddp) if self.compile else self._ddp

    def _default_loss(self, label_smoothing: float, class_weights: Sequence[float] | None) -> Callable:
        return self.target_kind.loss(class_weights, label_smoothing, self.device)

    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss: `loss_func`, over every member's output for a batched ensemble (read at each step, so
        a `loss_func` set after construction is the one used)."""
        if self.members > 1:
            return members_loss(self.loss_func, self.members)(out, y)
        return self.loss_func(out, y)

    def report(self, text: str) -> None:
        """Tell the user something about this fit beside the epoch lines; silent under progress=False and on
        the other ranks of a distributed run. Callbacks say why they stopped or changed training through it."""
        self.progress.note(text)

    def greater_is_better(self, name: str) -> bool:
        return greater_is_better(name, self.target_kind)

    # ---- freezing ------------------------------------------------------------------------------
    def freeze_to(self, n: int) -> None:
        """Freeze the first `n` layer groups (no gradients); BatchNorm in them keeps training when `train_bn`."""
        groups = self.model.groups()
        n = n % len(groups) if n < 0 else min(n, len(groups))
        self.frozen_to = n
        bn_params = {id(p) for m in self.model.modules() if _is_bn(m) for p in m.parameters(recurse=False)}
        for i, g in enumerate(groups):
            for p in g:
                p.requires_grad_(i >= n or (self.train_bn and id(p) in bn_params))

    def freeze(self) -> None:
        """Train the head only (and the body's BatchNorm layers when train_bn)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        self.freeze_to(0)

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.freeze_bn_stats:
            # Keep the body's pretrained BatchNorm statistics (Keras' advice for fine-tuning): on a few hundred
            # images, batch statistics are noisy and drift from the ones the weights were trained with.
            for m in self.model.body.modules():
                if _is_bn(m):
                    m.eval()
        elif self.frozen_to and not self.train_bn:
            frozen = {id(p) for g in self.model.groups()[: self.frozen_to] for p in g}
            for m in self.model.modules():
                if _is_bn(m) and any(id(p) in frozen for p in m.parameters(recurse=False)):
                    m.eval()  # frozen means frozen: no running-statistics updates either

    # ---- schedules -----------------------------------------------------------------------------
    def fit(self, epochs: int, lr: float | slice = 1e-3, *, resume: bool = False) -> list[dict]:
        """Train `epochs` epochs at a constant `lr` (a float, or slice(lo, hi) across layer groups)."""
        return self._fit(epochs, lr, constant(1.0), None, "fit", resume)

    def fit_one_cycle(self, epochs: int, max_lr: float | slice = 2e-3, *, pct_start: float = 0.25, div: float = 25.0,
                      final_div: float = 1e5, moms: tuple[float, float, float] = (0.95, 0.85, 0.95), resume: bool = False) -> list[dict]:
        """One-cycle: lr warms up from max_lr/div to max_lr over `pct_start`, then cosine-anneals to max_lr/final_div,
        while momentum (Adam's beta1) cycles 0.95 -> 0.85 -> 0.95."""
        return self._fit(epochs, max_lr, one_cycle(pct_start, div, final_div), momentum_cycle(*moms, pct_start=pct_start),
                         "fit_one_cycle", resume)

    def fit_flat_cos(self, epochs: int, lr: float | slice = 2e-3, *, pct_start: float = 0.75, resume: bool = False) -> list[dict]:
        """Flat lr for `pct_start` of training, then cosine annealing to zero."""
        return self._fit(epochs, lr, flat_cos(pct_start), None, "fit_flat_cos", resume)

    def fine_tune(self, epochs: int, base_lr: float = 2e-3, *, freeze_epochs: int = 1, lr_mult: float = 100, pct_start: float = 0.25,
                  div: float = 5.0, unfreeze_milestones: Sequence[Any] | None = None, unfrozen_lr: float | None = None,
                  resume: bool = False) -> list[dict]:
        """Transfer learning in two phases, as fastai does: `freeze_epochs` with the body frozen at `base_lr`,
        then `epochs` unfrozen epochs with discriminative rates slice(base_lr/2/lr_mult, base_lr/2).

        Differences from fastai: the frozen phase uses our pct_start (0.25) rather than 0.99, so the head gets a warm-up
        and an annealed finish in one epoch; the unfrozen phase keeps fastai's div=5.

        unfreeze_milestones: gradual unfreezing instead, e.g. ((1, 3), 5): after `freeze_epochs`, unfreeze the last
        body group at epoch 1, the rest at epoch 3, of 5 unfrozen epochs in all; each newly unfrozen group joins
        at its own (lower, discriminative) lr.

        unfrozen_lr: the unfrozen phase's top rate, when it must not follow the head's (transformers: the head trains
        at 1e-2 frozen, then everything at slice(1e-4/lr_mult, 1e-4)).
        """
        if freeze_epochs > 0:
            self.freeze()
            self.fit_one_cycle(freeze_epochs, base_lr, pct_start=pct_start, resume=resume)
        top = unfrozen_lr if unfrozen_lr is not None else base_lr / 2
        lrs = slice(top / lr_mult, top)
        if unfreeze_milestones:
            return self._gradual(unfreeze_milestones, lrs, pct_start, div, resume)
        self.unfreeze()
        return self.fit_one_cycle(epochs, lrs, pct_start=pct_start, div=div, resume=resume)

    def _gradual(self, milestones: Sequence[Any], lrs: slice, pct_start: float, div: float, resume: bool) -> list[dict]:
        try:
            steps, total = [int(s) for s in milestones[0]], int(milestones[1])
        except (TypeError, ValueError, IndexError):
            raise ConfigError(f"unfreeze_milestones={milestones!r}: expected ((epoch, epoch, ...), total_epochs), e.g. ((1, 3), 5).") from None
        bounds = [0, *steps, total]
        n_body = self.n_groups - 1
        for k in range(len(bounds) - 1):
            n_epochs = bounds[k + 1] - bounds[k]
            if n_epochs <= 0:
                continue
            # phase k unfreezes the last k body groups (phase 0: head only); the final phase unfreezes everything
            frozen = max(0, n_body - k) if k < len(bounds) - 2 else 0
            self.freeze_to(frozen)
            self.fit_one_cycle(n_epochs, lrs, pct_start=pct_start, div=div, resume=resume)
        return self.history

    # ---- the loop ------------------------------------------------------------------------------
    def _make_opt(self) -> None:
        if self.opt is None:
            self.opt = make_optimizer(self.model.groups(), self.opt_name, self.wd)

    def _set_hparams(self, lrs: list[float], lr_sched: Schedule, mom_sched: Schedule | None, pos: float) -> None:
        mult = lr_sched(pos)
        for pg in self.opt.param_groups:  # type: ignore[union-attr]
            pg["lr"] = lrs[pg["group_idx"]] * mult * self.lr_scale
            if mom_sched is not None:
                if "betas" in pg:
                    pg["betas"] = (mom_sched(pos), pg["betas"][1])
                elif "momentum" in pg:
                    pg["momentum"] = mom_sched(pos)

    def _fit(self, epochs: int, lr: float | slice, lr_sched: Schedule, mom_sched: Schedule | None, phase: str, resume: bool) -> list[dict]:
        stage, self.stage = self.stage, self.stage + 1
        start = 0
        self._make_opt()
        if resume and not self._resume_done:
            if self._resume_ckpt is None:
                self._resume_ckpt = self.load_checkpoint()
            ck = self._resume_ckpt
            if ck is not None:
                self._check_same_data(ck)
            if ck is not None and ck["stage"] == stage and ck["epochs"] != epochs:
                raise ConfigError(
                    f"{self.path / CHECKPOINT}: this run was interrupted in a phase of {ck['epochs']} epochs, not {epochs}. "
                    "Resume with the same --epochs/--freeze-epochs, or start again with --overwrite."
                )
            if ck is not None and ck["stage"] > stage:
                return self.history  # this phase finished before the interruption; a later one resumes
            if ck is not None:
                self._restore(ck, same_stage=ck["stage"] == stage)
                start = ck["epoch"] + 1 if ck["stage"] == stage else 0
            self._resume_done, self._resume_ckpt = True, None
        self._wrap()
        lrs = group_lrs(lr, self.n_groups)
        self.stop_training = False
        self.lr_scale = 1.0
        logs = {"epochs": epochs, "start_epoch": start, "phase": phase, "stage": stage}
        self.cbs.set_learner(self)
        self.cbs.on_fit_begin(logs)
        self._epochs, self._stage_now = epochs, stage
        try:
            for epoch in range(start, epochs):
                if self.stop_training:
                    break
                self._run_epoch(epoch, epochs, stage, lrs, lr_sched, mom_sched, phase)
        finally:
            self.cbs.on_fit_end(logs)
        return self.history

    def _run_epoch(self, epoch: int, epochs: int, stage: int, lrs: list[float], lr_sched: Schedule,
                   mom_sched: Schedule | None, phase: str) -> None:
        self.cbs.on_epoch_begin(epoch, {})
        t0 = time.perf_counter()
        dl = self.dls.train
        dl.set_epoch(stage * 1000 + epoch)
        torch.manual_seed(self.seed * 7919 + stage * 1000 + epoch)  # dropout: the same under the same seed, also after resume
        self._set_train_mode()
        n = len(dl)
        total_loss, count, smooth = 0.0, 0, None
        self.opt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
        mix_rng = self.mixer.rng(self.seed, stage * 1000 + epoch) if self.mixer else None  # seeded like augmentation
        where = f"{'frozen ' if self.frozen_to else ''}epoch {epoch + 1}"
        i, out_of_memory = 0, False
        try:
            for i, (x, y) in enumerate(dl):
                self.cbs.on_batch_begin(i, {})
                self._set_hparams(lrs, lr_sched, mom_sched, (epoch + i / n) / epochs)
                if self.mixer is not None:
                    x, y = self._mix(x, y, mix_rng)  # training batches only: validate() never mixes
                kill_point("batch")  # test hook (quicklearn/core/faults.py)
                loss = self._step(x, y, i, n)
                if not math.isfinite(loss):
                    raise self._diverged(f"the loss became {loss} at {where}, batch {i + 1} of {n} (lr {self._top_lr():.2g})")
                total_loss += loss * len(x)
                count += len(x)
                smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
                self.cbs.on_batch_end(i, {"loss": loss, "smooth_loss": smooth})
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True  # raised below, once this exception and the batch's tensors it holds are gone
        if out_of_memory:
            raise self._out_of_memory(f"at {where}, batch {i + 1} of {n}", getattr(dl, "bs", None))
        if self.distributed:  # the mean over every rank's items, the same number on every rank
            total_loss, count = ddp.all_gather_cat(torch.tensor([[total_loss, count]], dtype=torch.float64)).sum(0).tolist()
            ddp.broadcast_buffers(self.model)  # one model: rank 0's BatchNorm statistics everywhere (validated = exported)
        train_loss = total_loss / max(count, 1)
        self.cbs.on_test_begin({})
        try:
            metrics = self.validate()
        finally:
            self.cbs.on_test_end({})
        logs: dict[str, Any] = {"stage": stage, "phase": phase, "epoch": epoch, "train_loss": train_loss,
                                "valid_loss": metrics.pop("loss")}
        logs.update(metrics)
        valid_loss = logs["valid_loss"]
        bad = f"the validation loss became {valid_loss}" if not math.isfinite(valid_loss) else self._nonfinite_weights()
        if bad:  # the last steps diverged: this model must never be checkpointed (the last good checkpoint stays)
            raise self._diverged(f"{bad} after {where}, whose training loss was {train_loss:.4g} "
                                 f"(peak lr {max(lrs) * self.lr_scale:.2g})")
        logs["lr"] = lrs[-1] * lr_sched(1.0 if epoch == epochs - 1 else (epoch + 1) / epochs) * self.lr_scale
        logs["time_s"] = round(time.perf_counter() - t0, 2)
        self.history.append(logs)
        self.cbs.on_epoch_end(epoch, logs)

    def _mix(self, x: torch.Tensor, y: torch.Tensor, rng: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup/CutMix of a training batch. Data-parallel, a rank holds one slice of the global batch and an
        image's partner may sit in another rank's slice: gather the global batch, mix it with the same random
        numbers on every rank (as one process would), and keep this rank's slice."""
        if not self.distributed:
            return self.mixer(x, y, rng)  # type: ignore[misc]
        n = self.dls.train.bs  # training batches are full (drop_last): the global batch holds bs items
        rows, _ = ddp.batch_slice(n, ddp.rank(), ddp.world_size())
        gx, gy = ddp.all_gather_cat(x)[:n], ddp.all_gather_cat(y)[:n]  # rank order = the global batch's order
        mx, my = self.mixer(gx, gy, rng)  # type: ignore[misc]
        mx = mx[rows]
        return (mx.contiguous(memory_format=torch.channels_last) if self.channels_last else mx), my[rows]

    def _step(self, x: torch.Tensor, y: torch.Tensor, i: int, n: int) -> float:
        if self.distributed and self._ddp is None:
            self._wrap()  # lr_find before any fit
        update = (i + 1) % self.grad_accum == 0 or i + 1 == n
        # the batches of this accumulation group: grad_accum, or fewer in the epoch's last group, whose step
        # must be the mean over its own batches (training batches are full, so that is the mean over its items)
        group = min(self.grad_accum, n - (i // self.grad_accum) * self.grad_accum)
        # DDP: accumulation steps skip the gradient all-reduce (no_sync); the update step reduces the sum
        sync = self._ddp.no_sync() if self._ddp is not None and not update else contextlib.nullcontext()
        with sync:
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                out = self.train_forward(x)
                loss = self.train_loss(out.float(), self._scale_y(y))
            self.scaler.scale(loss / group).backward()
        if update:
            if self.grad_clip:
                self.scaler.unscale_(self.opt)
                nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], self.grad_clip)
            self.scaler.step(self.opt)
            self.scaler.update()
            self.opt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
        return loss.item()

    def _scale_y(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std if self.target_kind.standardized else y

    def _kept_checkpoint(self, change: str) -> str:
        """Where the last good checkpoint is (the Checkpoint callback writes one after every finished epoch, only)."""
        if self.path and (self.path / CHECKPOINT).exists():
            return (f" The last good checkpoint (after {len(self.history)} epochs) is kept in {self.path / CHECKPOINT}: "
                    f"add --resume and {change} to continue from it.")
        return " No epoch had finished, so there is no checkpoint to resume from." if self.path else ""

    def _nonfinite_weights(self) -> str | None:
        """Which parameter or BatchNorm statistic holds inf/NaN, if any: an overflowed running_var leaves the
        validation loss finite (x / sqrt(inf) = 0), so the loss alone does not show that the model diverged."""
        named = [*self.model.named_parameters(),
                 *((f"{m_name}.{b_name}", b) for m_name, m in self.model.named_modules() if _is_bn(m)
                   for b_name, b in m.named_buffers(recurse=False) if b.is_floating_point())]
        if not named or bool(torch.stack([torch.isfinite(t).all() for _, t in named]).all()):  # one device sync
            return None
        name = next(n for n, t in named if not torch.isfinite(t).all())
        return f"the weights {name} became inf/NaN"

    def _top_lr(self) -> float:
        return max((pg["lr"] for pg in self.opt.param_groups), default=0.0) if self.opt else 0.0  # type: ignore[union-attr]

    def _diverged(self, what: str) -> TrainingError:
        """NaN/inf: `what` says where and at which lr; add the likely cause (too high a learning rate) and what was kept."""
        return TrainingError(f"{what}. The learning rate is probably too high: try a lower --lr "
                             f"(see `quicklearn lr-find`).{self._kept_checkpoint('a lower --lr')}")

    def _out_of_memory(self, where: str, bs: int | None) -> TrainingError:
        """GPU out of memory: free what the failed batch left, then name the batch size and smaller ones to try."""
        if self.opt is not None:
            self.opt.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        train_bs = getattr(self.dls.train, "bs", None) or bs or 2
        half = max(1, train_bs // 2)
        used = f"batch size {bs or '?'}" + (f"; the training batch size is {train_bs}" if bs != train_bs else "")
        return TrainingError(f"out of GPU memory {where} ({used}, device {self.device}). Use a smaller batch: --bs {half} "
                             f"(Python: bs={half}), or --bs auto to pick one that fits; a smaller --size helps too."
                             f"{self._kept_checkpoint(f'--bs {half}')}")

    # ---- evaluation ----------------------------------------------------------------------------
    @torch.inference_mode()
    def get_preds(self, dl: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs (logits; regression in original units) and targets over a whole loader, on the CPU."""
        dl = dl or self.dls.valid
        self.model.eval()
        outs, ys = [], []
        out_of_memory = False
        try:
            for x, y in dl:
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                    out = self.forward(x)
                kill_point("validate")  # test hook (quicklearn/core/faults.py)
                outs.append(out.float().cpu())
                ys.append(y.cpu())
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True  # raised below, once this exception and the batch's tensors it holds are gone
        if out_of_memory:
            raise self._out_of_memory(f"while validating, batch {len(outs) + 1}", getattr(dl, "bs", None))
        preds, targets = torch.cat(outs), torch.cat(ys)
        if getattr(dl, "world", 1) > 1:  # a sharded loader: every rank's block, back in the original order
            preds, targets = ddp.all_gather_cat(preds), ddp.all_gather_cat(targets)
        if self.target_kind.standardized:
            preds = preds.flatten() * self.y_std + self.y_mean
        return preds, targets

    def validate(self, dl: Any = None) -> dict[str, float]:
        """Loss and metrics on the validation set (or `dl`)."""
        return self.score(*self.get_preds(dl))

    def score(self, preds: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Loss and metrics of outputs as `get_preds` returns them (logits; regression values in the target's
        units): how validation scores, and how another model's outputs score on the same rows (a baseline)."""
        if self.target_kind.standardized:
            loss = float(self.loss_func((preds - self.y_mean) / self.y_std, self._scale_y(targets)))
        else:
            loss = float(self.loss_func(preds.to(self.device), targets.to(self.device)))
        out = {"loss": loss}
        for name, fn in self.metric_fns.items():
            out[name] = fn(preds, targets)
        return out

    # ---- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, epoch: int) -> Path | None:
        """Atomically write everything needed to resume after `epoch`: model, optimizer, stage, history, RNG."""
        if not self.path:
            return None
        import json

        state = {
            "model": self.model.state_dict(), "opt": self.opt.state_dict() if self.opt else {},  # type: ignore[union-attr]
            "stage": self._stage_now, "epoch": epoch, "epochs": self._epochs, "frozen_to": self.frozen_to,
            "history": json.dumps(self.history), "torch_rng": torch.get_rng_state(), "scaler": self.scaler.state_dict(),
            "callbacks": self._callback_states(), "data": self.data_fingerprint(),
        }
        target = self.path / CHECKPOINT
        if ddp.is_main():  # every rank holds the same weights; one writes, the others wait until it is there
            with atomic_path(target) as tmp:
                torch.save(state, tmp)
        ddp.barrier()
        return target

    def _callback_states(self) -> dict[str, dict]:
        return {key: state for key, cb in self.cbs.keyed().items() if (state := cb.state_dict())}

    def data_fingerprint(self) -> dict[str, Any] | None:
        """What the checkpoint records of the data (see `LoaderPair.fingerprint`), computed once; None for data
        that cannot say."""
        if self._fingerprint is None and hasattr(self.dls, "fingerprint"):
            self._fingerprint = self.dls.fingerprint()
        return self._fingerprint

    def _check_same_data(self, ck: dict) -> None:
        """Refuse to resume on other data than the checkpoint's: the run would silently mix two data sets."""
        then, now = ck.get("data"), self.data_fingerprint()
        if not then or not now or then == now:
            return
        counts = lambda fp: f"{fp['n_train']} training items and {fp['n_valid']} validation items"  # noqa: E731
        if then["items"] != now["items"]:
            what = f"the items differ ({counts(then)} then, {counts(now)} now)"
        else:
            what = f"the same items in another train/validation split ({counts(then)} then, {counts(now)} now)"
        raise ConfigError(f"--resume: the data changed since the checkpoint in {self.path / CHECKPOINT}: {what}. "
                          "Resume with the data and split the run started on, or start again with --overwrite.")

    def load_checkpoint(self) -> dict | None:
        """The checkpoint in `path`, read without unpickling code (weights_only), or None."""
        if not self.path or not (self.path / CHECKPOINT).exists():
            return None
        from quicklearn.core.safe_load import torch_load

        ck = torch_load(self.path / CHECKPOINT, map_location=self.device, error=TrainingError,
                        fix="Delete it and start the run again (--overwrite).")
        if not isinstance(ck, dict) or not {"model", "stage", "epoch", "epochs"} <= ck.keys():
            raise TrainingError(f"{self.path / CHECKPOINT}: not a quicklearn checkpoint; delete it and start again (--overwrite).")
        return ck

    def _restore(self, ck: dict, same_stage: bool) -> None:
        import json

        self.model.load_state_dict(ck["model"])
        if same_stage and ck.get("frozen_to") is not None:
            self.freeze_to(int(ck["frozen_to"]))  # the phase's freezing, as the interrupted run had it
        if ck.get("torch_rng") is not None:
            torch.set_rng_state(ck["torch_rng"].cpu())
        self.opt = None
        self._make_opt()
        if ck["opt"]:
            self.opt.load_state_dict(ck["opt"])  # type: ignore[union-attr]
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        self.history = json.loads(ck["history"])
        states = ck.get("callbacks") or {}
        for key, cb in self.cbs.keyed().items():
            if key in states:
                cb.load_state_dict(states[key])
        log.info("resumed from %s (stage %d, epoch %d)", self.path / CHECKPOINT, ck["stage"], ck["epoch"] + 1)

    # ---- lr finder -----------------------------------------------------------------------------
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, plot: str | Path | None = "lr_find.png") -> LRFindResult:
        """Exponential lr sweep on a copy of the state (model and optimizer are restored after); suggests the valley."""
        from quicklearn.train.lr_find import run_lr_find

        model_state = copy.deepcopy(self.model.state_dict())
        opt_state = copy.deepcopy(self.opt.state_dict()) if self.opt else None
        had_opt, rng = self.opt is not None, torch.get_rng_state()
        requires = [p.requires_grad for p in self.model.parameters()]
        try:
            self._make_opt()
            lrs, losses = run_lr_find(self, start_lr, end_lr, num_it)
        finally:
            self.model.load_state_dict(model_state)
            for p, r in zip(self.model.parameters(), requires):
                p.requires_grad_(r)
            if had_opt:
                self.opt.load_state_dict(opt_state)  # type: ignore[union-attr,arg-type]
            else:
                self.opt = None
            torch.set_rng_state(rng)
        from quicklearn.train.lr_find import plot_lr_find, valley

        suggestion = valley(lrs, losses)
        path = plot_lr_find(lrs, losses, suggestion, plot) if plot else None
        return LRFindResult(suggestion, lrs, losses, path)

    # ---- reporting -----------------------------------------------------------------------------
    def summary(self) -> str:
        from quicklearn.train.summary import model_summary

        return model_summary(self)

    def plot_curves(self, path: str | Path = "training_curves.png") -> Path | None:
        """Save losses, validation metrics and every step's learning rate as a PNG (None before any epoch)."""
        from quicklearn.analysis.plots import plot_history

        return plot_history(self.history, path, self.recorder.trace)

    def export(self, path: str | Path, thresh: float | dict[str, float] | None = None) -> Path:
        """Write a self-contained model directory (safetensors weights + JSON config); see `quicklearn.load`.
        thresh: a multi-label model's threshold(s), a float or {label: float}, e.g. `fit_thresholds(learn)`."""
        from quicklearn.serving.folder import export_learner

        return export_learner(self, path, thresh=thresh)

    def show_results(self, path: str | Path | None = None, n: int = 12) -> Path:
        """The first `n` validation items with predicted and actual targets: a PNG grid for images (green right,
        red wrong; default results.png), a CSV for tables and texts (default results.csv)."""
        return self.dls.show_results(self, path, n)

    def tta(self, dl: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Test-time augmentation over the validation set (or `dl`): like `get_preds`, averaged over fixed views
        (for images: flips and a zoomed crop); the outputs decode and score as `get_preds`' do."""
        return self.dls.tta(self, dl or self.dls.valid)
