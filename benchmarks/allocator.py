"""The glibc allocator setting (quicklearn.core.runtime.tune_cpu_allocator) on and off, side by side (issue 6).

Each mode runs in a fresh subprocess, alternating: tf_efficientnet_lite0, channels_last, bs 32 at 224 px,
6 training steps (body BatchNorm in eval, as fine-tuning does) + 3 validation batches of 64. Prints wall, user
and kernel CPU time and peak RSS of each.

    .venv/bin/python benchmarks/allocator.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def worker() -> None:
    import torch

    from quicklearn.tasks.vision.model import build_model
    from quicklearn.core.runtime import tune_cpu_allocator

    applied = tune_cpu_allocator()
    torch.manual_seed(0)
    model, _ = build_model("tf_efficientnet_lite0", 2, weights=None)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(32, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (32,))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    model.train()
    for m in model.body.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(6):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.inference_mode():
        for _ in range(3):
            model(torch.cat([x, x]))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print("RESULT " + json.dumps({"applied": applied, "wall": time.perf_counter() - t0, "user": r1.ru_utime - r0.ru_utime,
                                  "sys": r1.ru_stime - r0.ru_stime, "rss_mb": r1.ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker()
        return
    res: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            env = dict(os.environ, QUICKLEARN_TUNE_MALLOC="1" if mode == "on" else "0")
            out = subprocess.run([sys.executable, __file__, "--worker"], capture_output=True, text=True, env=env, check=True)
            r = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
            res[mode].append(r)
            print(f"tune_cpu_allocator {mode:<3} (applied={r['applied']}): wall {r['wall']:5.1f} s  user {r['user']:5.1f} s  "
                  f"kernel {r['sys']:5.1f} s  peak RSS {r['rss_mb']:5.0f} MB", flush=True)
    best = {m: min(r["wall"] for r in rs) for m, rs in res.items()}
    print(f"speed-up (best of {args.repeats}): {best['off'] / best['on']:.2f}x")


if __name__ == "__main__":
    main()
