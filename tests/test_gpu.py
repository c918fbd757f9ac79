"""CUDA paths: mixed precision, channels_last, the batch-size finder. Skipped where there is no GPU (CI has none)."""

import math

import pytest
import torch

import quicklearn as ql

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_cuda_amp_channels_last_trains(tiny_folder):
    learn = ql.vision_learner(tiny_folder, arch="resnet10t", weights=None, size=32, bs=4, progress=False, device="cuda")
    assert learn.amp_dtype in (torch.bfloat16, torch.float16) and learn.channels_last
    x, _ = next(iter(learn.dls.train))
    assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
    learn.fit_one_cycle(1, 1e-3)
    assert math.isfinite(learn.history[-1]["valid_loss"])


def test_batch_size_finder_on_cuda(tiny_folder):
    learn = ql.vision_learner(tiny_folder, arch="resnet10t", weights=None, size=32, bs="auto", progress=False, device="cuda")
    # tiny_folder: 15 training images, so the cap max(2, n // 4) = 3 applies whatever the GPU holds
    assert learn.dls.train.bs == max(2, learn.dls.train.n // 4)


def test_batch_size_finder_probes_in_the_training_precision_and_halves_what_fits(digits_folder):
    from quicklearn.tasks.vision.batch_size import find_batch_size
    from quicklearn.tasks.vision.model import build_model

    dls = ql.image_dataloaders(digits_folder, size=224, bs=4)  # 320 training images: the n // 4 cap is 80
    model, _ = build_model("resnet50", dls.n_out, weights=None)
    torch.cuda.set_per_process_memory_fraction(min(1.0, 6 * 2**30 / torch.cuda.get_device_properties(0).total_memory))
    try:
        fp32 = find_batch_size(model, dls, torch.device("cuda"), None, largest=64)
        bf16 = find_batch_size(model, dls, torch.device("cuda"), torch.bfloat16, largest=64)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    for bs in (fp32, bf16):
        assert bs & (bs - 1) == 0 and 2 <= bs <= 32  # half of a power of two that fitted (largest 64)
    assert fp32 <= bf16, (fp32, bf16)  # fp32 activations need more memory: never a larger batch


def test_batch_size_finder_leaves_pretrained_statistics_alone(tiny_folder):
    from quicklearn.tasks.vision.batch_size import find_batch_size
    from quicklearn.tasks.vision.model import build_model

    dls = ql.image_dataloaders(tiny_folder, size=32, bs=4)
    model, _ = build_model("resnet10t", dls.n_out, weights=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    find_batch_size(model, dls, torch.device("cuda"))
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), before[k]), k
