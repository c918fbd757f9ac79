"""Data-parallel training: the sharding rules in one process, then a real 2-process torchrun run (gloo, CPU)
whose weights after k steps and validation metrics match a 1-process run of the same global batch and seed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import quicklearn as ql
from quicklearn.core import distributed as ddp
from quicklearn.data.loaders import shard_batches

ARCH = "resnet10t"
# The 2-process run uses a model without BatchNorm (ConvNeXt normalizes with LayerNorm): on CPU, PyTorch's DDP
# refuses SyncBatchNorm ("only works with GPU modules"), and plain BatchNorm would normalize each rank's half batch
# with that half's statistics, which a 1-process run cannot reproduce. The head goes without BatchNorm and
# dropout for the same reasons (dropout masks are drawn per rank's slice: equivalent, not identical).
PARITY_ARCH = "convnext_atto"


# ---- sharding rules (no process group needed) --------------------------------------------------------------
@pytest.mark.parametrize("n, world", [(8, 2), (6, 2), (7, 2), (5, 3), (1, 2), (8, 4)])
def test_batch_slices_cover_the_global_batch_in_order_with_equal_counts(n, world):
    parts = [ddp.batch_slice(n, r, world) for r in range(world)]
    counts = {len(pos) for pos, _ in parts}
    assert len(counts) == 1  # every rank the same number of items: DDP's gradient average is the global mean
    flat = [p for pos, _ in parts for p in pos]
    assert flat[:n] == list(range(n))  # rank order = the global batch's order; padding only after it
    assert all(0 <= p < n for p in flat) and parts[0][1] == len(flat)


@pytest.mark.parametrize("n, world", [(10, 2), (5, 2), (5, 4), (3, 3)])
def test_block_slices_are_disjoint_cover_everything_and_none_is_empty(n, world):
    blocks = [list(range(n))[ddp.block_slice(n, r, world)] for r in range(world)]
    assert sum(blocks, []) == list(range(n))
    assert all(blocks)


def test_one_process_helpers_are_no_ops():
    assert ql.distributed is ddp  # public as ql.distributed
    assert not ddp.is_distributed() and ddp.rank() == 0 and ddp.world_size() == 1 and ddp.is_main()
    t = torch.arange(5)
    assert ddp.all_gather_cat(t) is t
    ddp.barrier()  # returns at once


def test_launched_by_torchrun_reads_the_environment(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert not ddp.launched_by_torchrun() and not ddp.init_from_env()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ddp.launched_by_torchrun() and ddp.local_rank() == 1


def test_rank_slices_of_augmented_batches_equal_the_one_process_batch(tiny_folder, one_thread):
    """What makes the parity run possible with augmentation on: the ranks' slices, put together, are the global
    batch exactly (same items, same augmentation draws), and validation blocks cover every item once."""
    learn = ql.vision_learner(tiny_folder, arch=ARCH, weights=None, size=16, bs=8, progress=False, seed=3)
    train, valid = learn.dls.train, learn.dls.valid
    train.set_epoch(5)
    whole = list(train)
    per_rank = []
    for r in range(2):
        learn.dls.shard(r, 2)
        train.set_epoch(5)
        per_rank.append(list(train))
        assert len(train) == len(whole)
    learn.dls.shard(0, 1)
    for b, (x, y) in enumerate(whole):
        (x0, y0), (x1, y1) = per_rank[0][b], per_rank[1][b]
        assert len(x0) == len(x1)
        torch.testing.assert_close(torch.cat([x0, x1]), x, rtol=0, atol=1e-6)
        assert torch.equal(torch.cat([y0, y1]), y)
    vx = torch.cat([x for x, _ in valid])
    blocks = []
    for r in range(2):
        learn.dls.shard(r, 2)
        blocks.append(torch.cat([x for x, _ in valid]))
    learn.dls.shard(0, 1)
    torch.testing.assert_close(torch.cat(blocks), vx, rtol=0, atol=0)


def _table_and_text_loaders(shuffle: bool):
    from quicklearn.tasks.tabular.data import TabularLoader
    from quicklearn.tasks.text.data import TextLoader

    g = torch.Generator().manual_seed(0)
    y = torch.arange(21)
    ids = [torch.randint(2, 50, (int(k),), generator=g) for k in torch.randint(3, 12, (21,), generator=g)]
    return [TabularLoader(torch.randn(21, 3, generator=g), y, bs=8, shuffle=shuffle, drop_last=shuffle, epoch=4),
            TextLoader(ids, y, pad_id=0, bs=8, shuffle=shuffle, drop_last=shuffle, epoch=4)]


@pytest.mark.parametrize("which", [0, 1], ids=["table", "text"])
def test_table_and_text_loaders_shard_like_image_loaders(which):
    train, valid = _table_and_text_loaders(True)[which], _table_and_text_loaders(False)[which]
    whole_train, whole_valid = [y for _, y in train], [y for _, y in valid]
    ranks_train, ranks_valid = [], []
    for r in range(2):
        train.rank = valid.rank = r
        train.world = valid.world = 2
        valid.whole_batches = False
        ranks_train.append([y for _, y in train])
        ranks_valid.append(torch.cat([y for _, y in valid]))
        assert len(train) == len(whole_train) and len(ranks_train[-1]) == len(whole_train)
    for b, y in enumerate(whole_train):
        assert torch.equal(torch.cat([ranks_train[0][b], ranks_train[1][b]]), y)
    assert torch.equal(torch.cat(ranks_valid), torch.cat(whole_valid))  # every item once, in the 1-process order


def test_uneven_last_batch_is_padded_so_every_rank_steps_equally():
    batches = [torch.arange(8), torch.arange(8, 13)]  # 13 items, bs 8: a last batch of 5
    r0 = shard_batches(batches, 8, 0, 2, True)
    r1 = shard_batches(batches, 8, 1, 2, True)
    assert [len(i) for i, _, _ in r0] == [len(i) for i, _, _ in r1] == [4, 3]
    assert sorted(torch.cat([r0[1][0], r1[1][0]]).tolist()) == [8, 8, 9, 10, 11, 12]  # item 8 twice (the pad)


def test_distributed_true_without_torchrun_is_a_config_error(tiny_folder, monkeypatch, one_thread):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ql.errors.ConfigError, match="torchrun"):
        ql.vision_learner(tiny_folder, arch=ARCH, weights=None, size=16, bs=8, progress=False, distributed=True)


# ---- the real thing: 2 processes under torchrun vs 1 process -------------------------------------------------
WORKER = r'''
import json, sys, torch
import quicklearn as ql
from quicklearn import distributed as ddp

data, out, run_dir, arch = sys.argv[1:5]
torch.set_num_threads(1)
sync_bn_error = None
if ddp.launched_by_torchrun():
    try:  # SyncBatchNorm cannot run on CPU: the option must say so, on every rank, before any training
        ql.vision_learner(data, arch="resnet10t", weights=None, size=16, bs=8, progress=False, sync_bn=True, device="cpu")
    except ql.errors.ConfigError as e:
        sync_bn_error = str(e)
# mixup on: the partner of an image may sit in another rank's slice, and one process mixes the whole batch
learn = ql.vision_learner(data, arch=arch, weights=None, size=32, bs=8, progress=False, seed=5, mixup=0.4,
                          head=ql.HeadConfig(batchnorm=False, dropout=0.0), path=run_dir, device="cpu")
learn.fine_tune(1, 1e-2, freeze_epochs=1)   # frozen then unfrozen: the DDP wrapper is rebuilt between phases
agreed = ddp.min_over_ranks(10 + 5 * ddp.rank())   # what bs="auto" does with each rank's own probe
valid = learn.validate()
if ddp.is_main():
    torch.save({"state": learn.model.state_dict(), "history": learn.history, "valid": valid,
                "world": ddp.world_size(), "sync_bn_error": sync_bn_error, "agreed": agreed, "steps": len(learn.dls.train), "n_valid": learn.dls.valid.n}, out)
ddp.barrier()
ddp.cleanup()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], cache: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "QUICKLEARN_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def parity_runs(tmp_path_factory):
    """The same training run in one process and in two (torchrun, gloo), each with a fresh image cache."""
    from tests.conftest import write_image  # noqa: PLC0415 (the tiny_folder fixture is function-scoped)

    root = tmp_path_factory.mktemp("ddp")
    colors = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}
    for name, c in colors.items():
        for i in range(10):  # 30 images: 24 train, 3 global batches of 8 per epoch (drop_last)
            write_image(root / "data" / name / f"{name}_{i}.png", size=(24 + i, 20), color=c)
    script = root / "worker.py"
    script.write_text(WORKER)
    one, two = root / "one.pt", root / "two.pt"
    _run([sys.executable, str(script), str(root / "data"), str(one), str(root / "run1"), PARITY_ARCH], root / "cache1")
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(_free_port()), str(script), str(root / "data"), str(two), str(root / "run2"), PARITY_ARCH], root / "cache2")
    return torch.load(one, weights_only=False), torch.load(two, weights_only=False), root


def test_two_processes_train_exactly_like_one(parity_runs):
    one, two, _ = parity_runs
    assert one["world"] == 1 and two["world"] == 2
    assert one["agreed"] == 10 and two["agreed"] == 10  # rank 1 probed 15: every rank takes the smallest
    assert one["steps"] == two["steps"] >= 2  # the same global batches: each rank steps through all of them
    for name, p1 in one["state"].items():
        p2 = two["state"][name]
        if p1.is_floating_point():
            torch.testing.assert_close(p2, p1, rtol=0, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
        else:
            assert torch.equal(p2, p1), name  # num_batches_tracked: same number of steps
    for key in ("accuracy", "loss"):
        assert two["valid"][key] == pytest.approx(one["valid"][key], abs=1e-5)
    assert len(one["history"]) == len(two["history"]) == 2
    for h1, h2 in zip(one["history"], two["history"]):
        assert h2["valid_loss"] == pytest.approx(h1["valid_loss"], abs=1e-5)
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], abs=1e-5)  # reduced over both ranks
        assert h2["accuracy"] == h1["accuracy"]


def test_rank0_writes_the_run_folder_and_ranks_share_one_image_cache(parity_runs):
    _, two, root = parity_runs
    history = json.loads((root / "run2" / "history.json").read_text())
    assert len(history) == 2 and history[-1]["valid_loss"] == pytest.approx(two["history"][-1]["valid_loss"])
    assert (root / "run2" / "checkpoint.pt").exists()
    assert "sync_bn" in two["sync_bn_error"] and "CUDA" in two["sync_bn_error"]
    assert not [p for p in (root / "run2").iterdir() if ".tmp" in p.name]  # no half-written file left behind
    one_proc = {p.name for p in (root / "cache1" / "images").glob("*.u8")}
    both_ranks = {p.name for p in (root / "cache2" / "images").iterdir()}
    # two ranks started at once (train + valid at 32 px, and 16 px for the sync_bn check): one complete entry
    # per key, the same keys as the 1-process run's, and no temporary file from a second, racing build
    assert one_proc and one_proc <= both_ranks and len([n for n in both_ranks if n.endswith(".u8")]) == 4
    assert all(n.endswith((".u8", ".json", ".lock")) for n in both_ranks), both_ranks
