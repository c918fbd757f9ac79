"""Data-parallel training on torch.distributed: the process group from torchrun's environment, rank queries,
and the sharding rules the loaders use.

Every helper asks torch.distributed itself (no state of our own), so a process that was not started by torchrun
sees rank 0 of a world of 1 and every helper is a no-op.

Sharding: every rank computes the SAME global order and global batches (of the batch size the user asked for)
and takes its own contiguous slice of each batch (`batch_slice`), so a 2-process step sees the same items as
a 1-process step; validation gives each rank one contiguous block (`block_slice`) and `all_gather_cat` puts the
predictions back in the original order.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from quicklearn.core.errors import ConfigError

__all__ = ["launched_by_torchrun", "init_from_env", "is_distributed", "rank", "local_rank", "world_size", "is_main", "barrier", "all_gather_cat", "broadcast_object", "min_over_ranks", "cleanup", "batch_slice", "block_slice", "device_for_rank", "broadcast_buffers"]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    """True when torchrun (torch.distributed.run) started this process: RANK, WORLD_SIZE and LOCAL_RANK are set."""
    return all(os.environ.get(k) for k in _ENV)


def is_distributed() -> bool:
    """True when a process group is up with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """How many processes train together (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    """This process's rank on its machine (torchrun's LOCAL_RANK; 0 otherwise): which GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """Rank 0: the one process that prints progress and writes files."""
    return rank() == 0


def device_for_rank(device: str | torch.device | None) -> str | torch.device | None:
    """Under torchrun, 'auto'/'cuda' mean this rank's own GPU (cuda:LOCAL_RANK); anything else is kept."""
    if launched_by_torchrun() and torch.cuda.is_available() and (device is None or str(device) in ("auto", "cuda")):
        return torch.device("cuda", local_rank())
    return device


def init_from_env(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Start the process group from torchrun's environment (NCCL on CUDA, gloo on CPU); False when not under
    torchrun. Idempotent: a group already up is kept. CUDA processes use the GPU numbered LOCAL_RANK."""
    if not launched_by_torchrun():
        return False
    if dist.is_initialized():
        return True
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; install a standard torch wheel to train with torchrun.")
    use_cuda = torch.cuda.is_available() and backend in (None, "nccl")
    if use_cuda:
        if local_rank() >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={local_rank()} but this machine has {torch.cuda.device_count()} GPU(s); "
                              "start at most that many processes per node (--nproc_per_node).")
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"), timeout=datetime.timedelta(seconds=timeout_s))
    return True


def barrier() -> None:
    """Wait until every rank gets here (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def _comm_device() -> torch.device:
    """Where collective tensors must live: the current GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `tensor` along dim 0 in rank order; lengths may differ between ranks.
    Returns the tensor unchanged in one process; the result lies where `tensor` was."""
    if not is_distributed():
        return tensor
    dev = _comm_device()
    t = tensor.detach().to(dev).contiguous()
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    lengths = [int(s.item()) for s in sizes]
    longest = max(lengths)
    if t.shape[0] < longest:  # all_gather needs equal shapes: pad, then cut each rank's rows back out
        t = torch.cat([t, t.new_zeros((longest - t.shape[0], *t.shape[1:]))])
    parts = [torch.empty_like(t) for _ in lengths]
    dist.all_gather(parts, t)
    return torch.cat([p[:k] for p, k in zip(parts, lengths)]).to(tensor.device)


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank `src`'s buffers (BatchNorm running statistics). DDP only broadcasts them at the start
    of each training forward, so after the last step each rank holds the statistics of its own slice: without
    this, ranks would validate different models and rank 0 would export a model other than the one validated."""
    if not is_distributed():
        return
    dev = _comm_device()
    for buf in module.buffers():
        t = buf.to(dev)
        dist.broadcast(t, src=src)
        if t is not buf:
            buf.copy_(t)


def broadcast_object(obj: object, src: int = 0) -> object:
    """Rank `src`'s `obj` on every rank (picklable objects; no-op in one process)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def min_over_ranks(value: int) -> int:
    """The smallest of every rank's `value`, on every rank (the value itself in one process): what ranks that
    measured something on their own device, such as the batch size that fits, must agree on."""
    if not is_distributed():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def cleanup() -> None:
    """Tear the process group down (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def batch_slice(n: int, rank_: int, world: int) -> tuple[list[int], int]:
    """Which positions of a global batch of `n` items rank `rank_` takes: a contiguous run of ceil(n/world).

    A batch that does not divide evenly is padded by wrapping around to its first items (as torch's
    DistributedSampler pads), so every rank gets the same count and DDP's gradient average equals the mean over
    the padded global batch. Returns (positions, padded global size)."""
    per = -(-n // world) if n else 0
    return [(rank_ * per + j) % n for j in range(per)] if n else [], per * world


def block_slice(n: int, rank_: int, world: int) -> slice:
    """Rank `rank_`'s contiguous block of `n` ordered items (validation): disjoint, covering every item once."""
    return slice(rank_ * n // world, (rank_ + 1) * n // world)  # balanced: none empty while n >= world
