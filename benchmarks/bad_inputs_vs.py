"""quicklearn vs fastai 2.8 vs Keras 3 on the same bad inputs (issue 10, "Must show").

Generates each bad input in a fresh temp folder and hands it to each tool in a fresh subprocess with a timeout:

- quicklearn: the installed CLI, `quicklearn train --data D --weights none --arch resnet10t --size 32 --epochs 1
  --freeze-epochs 0 --bs 4` (tables: `--task tabular --target survived --epochs 1`; the recipe case: `--recipe`;
  weights: `--weights evil.pth`; a model directory: `quicklearn predict DIR img.jpg`).
- fastai 2.8: ImageDataLoaders.from_folder(valid_pct=0.25, item_tfms=Resize(32), bs=4, num_workers=0) +
  vision_learner(resnet18, pretrained=False).fine_tune(1); TabularDataLoaders.from_csv + tabular_learner.fit(1);
  Learner.load for a .pth, load_learner for an exported model.
- Keras 3 (torch backend, no TensorFlow): image_dataset_from_directory(format="grain", which decodes with Pillow)
  + a tiny conv net's fit(epochs=1); Keras has no CSV reader, so tables go through pandas.read_csv as its
  tutorials do; torch.load for a .pth (the torch backend's reader), load_model for a .keras file with a lambda.

Outcome of each (input, tool):
  handled      trained/loaded correctly: a bad file skipped and named in a warning; a valid but unusual file
               (CMYK, 16-bit, alpha) used with the right pixels; a table parsed into the right columns and text
  clear error  it stopped with a message that names the input (file, column, key)
  traceback    it stopped with an exception whose message does not name the input
  hang         no result within the timeout
  silent       it ran but did something wrong: trained on a corrupt or mis-decoded image, followed a symlink loop
               into duplicates, said nothing about a class it cannot validate, ran the code in a pickle (a
               sentinel file appears), ...
  n/a          the tool has no such input (fastai and Keras read no recipe files)
For the libraries an exception is how an API reports, so "clear error" judges the message, not the traceback;
quicklearn's CLI promises more (one "error:" line, no traceback), and a traceback it prints is flagged.

    bash benchmarks/make_env.sh                  # once: benchmarks/.venv with fastai 2.8.12, Keras 3.15.1 and grain
    benchmarks/.venv/bin/python benchmarks/bad_inputs_vs.py [--cases truncated_jpeg ...] [--tools quicklearn ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

TOOLS = ("quicklearn", "fastai", "keras")
TOOL_TITLES = {"quicklearn": "quicklearn", "fastai": "fastai 2.8", "keras": "Keras 3 (torch backend)"}
TIMEOUT_S = 180
RESULT = "@@RESULT "
SIZE, PER_CLASS = 32, 6
N_GOOD = 2 * PER_CLASS
MAX_PIXEL_DIFF = 10.0  # mean |difference| (0-255) to the reference that still counts as the right picture
CSV_COLUMNS = ("age", "city", "income")
SENTINEL = "CODE_RAN"


# ---- the bad inputs ----------------------------------------------------------------------------------------
def _gradient(seed: int, size: int = SIZE):
    """A smooth RGB picture (JPEG keeps it within a few levels), different per seed."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    r, g, b = (np.sin(3 * x + seed), np.cos(2 * y + seed / 2), x * y)
    return ((np.stack([r, g, b], -1) * 0.5 + 0.5).clip(0, 1) * 255).round().astype(np.uint8)


def good_images(root: Path) -> Path:
    """cats/ and dogs/, PER_CLASS 32 px JPEGs each."""
    from PIL import Image

    for k, cls in enumerate(("cats", "dogs")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            arr = _gradient(10 * k + i)
            arr[..., k * 2] = 200  # a class colour, so there is something to learn
            Image.fromarray(arr).save(root / cls / f"{cls}{i}.jpg", quality=95)
    return root


def _save_refs(folder: Path, refs: list) -> list[str]:
    import numpy as np

    out = []
    for i, ref in enumerate(refs):
        p = folder / f"reference{i}.npy"
        np.save(p, ref)
        out.append(str(p))
    return out


def truncated_jpeg(d: Path) -> dict:
    import numpy as np
    from PIL import Image

    data = good_images(d / "data")
    bad = data / "cats" / "half.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(bad, quality=90)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    return dict(data=str(data), expect="skip", bad=bad.name, names=[bad.name])


def zero_byte_jpeg(d: Path) -> dict:
    data = good_images(d / "data")
    (data / "dogs" / "empty.jpg").write_bytes(b"")
    return dict(data=str(data), expect="skip", bad="empty.jpg", names=["empty.jpg"])


def text_as_jpg(d: Path) -> dict:
    data = good_images(d / "data")
    (data / "cats" / "notes.jpg").write_text("shopping list: milk, eggs\n")
    return dict(data=str(data), expect="skip", bad="notes.jpg", names=["notes.jpg"])


def cmyk_jpeg(d: Path) -> dict:
    from PIL import Image

    data = good_images(d / "data")
    rgb = _gradient(99)
    Image.fromarray(rgb).convert("CMYK").save(data / "cats" / "cmyk.jpg", quality=95)
    return dict(data=str(data), expect="use", bad="cmyk.jpg", names=["cmyk.jpg"], refs=_save_refs(d, [rgb]))


def png_16bit(d: Path) -> dict:
    import numpy as np
    from PIL import Image

    data = good_images(d / "data")
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    deep = ((x + y) * (65535 / (2 * SIZE - 2))).round().astype(np.uint16)  # the full 16-bit range
    Image.fromarray(deep).save(data / "dogs" / "deep.png")
    assert Image.open(data / "dogs" / "deep.png").mode.startswith("I;16")
    ref = np.repeat((deep // 257).astype(np.uint8)[..., None], 3, -1)
    return dict(data=str(data), expect="use", bad="deep.png", names=["deep.png"], refs=_save_refs(d, [ref]))


def rgba_png(d: Path) -> dict:
    import numpy as np
    from PIL import Image

    data = good_images(d / "data")
    rgb = _gradient(7)
    alpha = np.tile(np.linspace(0, 255, SIZE).round().astype(np.uint8), (SIZE, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(data / "dogs" / "alpha.png")
    a = alpha[..., None] / 255.0
    refs = [rgb, (rgb * a + 255 * (1 - a)).round().astype(np.uint8), (rgb * a).round().astype(np.uint8)]
    return dict(data=str(data), expect="use", bad="alpha.png", names=["alpha.png"], refs=_save_refs(d, refs))


def symlink_loop(d: Path) -> dict:
    data = good_images(d / "data")
    os.symlink("..", data / "cats" / "loop")  # data/cats/loop -> data
    return dict(data=str(data), expect="exact", bad="loop", names=["loop"])


def bomb_png(d: Path) -> dict:
    """A PNG whose header claims 20000 x 10000 RGB (200 M pixels, over Pillow's bomb limit) with a tiny body."""
    data = good_images(d / "data")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    w, h = 20000, 10000
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * (3 * w + 1) * 4)) + chunk(b"IEND", b""))
    (data / "dogs" / "bomb.png").write_bytes(png)
    return dict(data=str(data), expect="skip", bad="bomb.png", names=["bomb.png"])


def one_image_class(d: Path) -> dict:
    from PIL import Image

    data = good_images(d / "data")
    (data / "birds").mkdir()
    Image.fromarray(_gradient(42)).save(data / "birds" / "bird0.jpg", quality=95)
    return dict(data=str(data), expect="notice", bad="birds", names=["birds"])


def _table_rows() -> list[tuple]:
    cities = ("Zürich", "São Paulo", "Köln", "Oslo")
    return [("yes" if i % 3 else "no", 20 + i % 30, cities[i % 4], 1000.0 + 37 * i) for i in range(48)]


def _write_table(path: Path, sep: str = ",", encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [sep.join(("survived",) + CSV_COLUMNS)] + [sep.join(str(v) for v in row) for row in _table_rows()]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def csv_semicolon(d: Path) -> dict:
    p = _write_table(d / "semicolon.csv", sep=";")
    return dict(data=str(p), expect="table", names=[p.name, "separator", "delimiter"])


def csv_bom(d: Path) -> dict:
    p = _write_table(d / "bom.csv", encoding="utf-8-sig")  # the BOM sits on the target, the first column
    return dict(data=str(p), expect="table", names=[p.name, "BOM"])


def csv_latin1(d: Path) -> dict:
    p = _write_table(d / "latin1.csv", encoding="latin-1")
    return dict(data=str(p), expect="table", names=[p.name, "encoding"])


def csv_missing_target(d: Path) -> dict:
    p = d / "no_target.csv"
    lines = [",".join(CSV_COLUMNS)] + [",".join(str(v) for v in row[1:]) for row in _table_rows()]
    p.write_text("\n".join(lines) + "\n")
    return dict(data=str(p), expect="error", names=["survived"])


def _payload(d: Path) -> str:
    return f"open({str(d / SENTINEL)!r}, 'w').write('code ran')"


def yaml_python_tag(d: Path) -> dict:
    data = good_images(d / "data")
    p = d / "evil.yaml"
    p.write_text(f"task: vision\nmodel: !!python/object/apply:builtins.exec [\"{_payload(d)}\"]\n")
    return dict(data=str(data), recipe=str(p), expect="refuse", names=[p.name])


class _RunsCode:
    """Pickles as a call of exec(code): unpickling it runs the code."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def weights_pickle(d: Path) -> dict:
    import torch

    data = good_images(d / "data")
    p = d / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "extra": _RunsCode(_payload(d))}, p)
    return dict(data=str(data), weights=str(p), expect="refuse", names=[p.name])


def model_pickle(d: Path) -> dict:
    """Each tool's own model file with code planted in it (made by the worker: the formats differ)."""
    data = good_images(d / "data")
    return dict(data=str(data), payload=_payload(d), sentinel=str(d / SENTINEL), expect="refuse",
                names_by_tool={"quicklearn": ["model.safetensors"], "fastai": ["export.pkl"], "keras": ["model.keras"]})


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    build: Callable[[Path], dict]
    tools: tuple[str, ...] = TOOLS


CASES = [
    Case("truncated_jpeg", "truncated JPEG in a class folder", truncated_jpeg),
    Case("zero_byte_jpeg", "zero-byte .jpg", zero_byte_jpeg),
    Case("text_as_jpg", "text file named .jpg", text_as_jpg),
    Case("cmyk_jpeg", "CMYK JPEG", cmyk_jpeg),
    Case("png_16bit", "16-bit grayscale PNG", png_16bit),
    Case("rgba_png", "RGBA PNG (alpha gradient)", rgba_png),
    Case("symlink_loop", "symlink loop (cats/loop -> ..)", symlink_loop),
    Case("bomb_png", "decompression-bomb PNG header (200 Mpx)", bomb_png),
    Case("one_image_class", "class folder with one image", one_image_class),
    Case("csv_semicolon", "CSV with ';' separators", csv_semicolon),
    Case("csv_bom", "CSV with a UTF-8 BOM", csv_bom),
    Case("csv_latin1", "CSV in latin-1", csv_latin1),
    Case("csv_missing_target", "CSV without the target column", csv_missing_target),
    Case("yaml_python_tag", "recipe YAML with !!python/object/apply", yaml_python_tag, ("quicklearn",)),
    Case("weights_pickle", ".pth weights whose pickle runs code", weights_pickle),
    Case("model_pickle", "model file whose loading runs code", model_pickle),
]


# ---- workers: each runs in its own process and ends with one RESULT line -----------------------------------
def _pixel_diff(arr, refs: list[str]) -> float:
    """Smallest mean |difference| between an (H, W, 3) picture and the acceptable references."""
    import numpy as np

    arr = np.asarray(arr, dtype=np.float64)
    return min(float(np.abs(arr - np.load(r).astype(np.float64)).mean()) if arr.shape == np.load(r).shape
               else float("inf") for r in refs)


def _find(items: list[str], name: str) -> int:
    return next((i for i, p in enumerate(items) if Path(p).name == name), -1)


def _cli(*args: str, env: dict | None = None) -> tuple[int, str]:
    """Run the installed `quicklearn` console script; echo its output (the parent reads it for warnings)."""
    exe = Path(sys.executable).with_name("quicklearn")
    p = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)
    text = p.stdout + p.stderr
    print(text, flush=True)
    return p.returncode, text


def _cli_error(text: str) -> str | None:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    err = next((ln for ln in lines if ln.startswith("error:")), None)
    if err is None and "Traceback (most recent call last)" in text:
        err = next((ln for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Warning)\b", ln)), lines[-1])
    return err


def run_quicklearn(spec: dict, work: Path) -> dict:
    out = work / "out"
    img_args = ["--weights", "none", "--arch", "resnet10t", "--size", str(SIZE), "--epochs", "1",
                "--freeze-epochs", "0", "--bs", "4", "--seed", "0", "--out", str(out)]
    facts: dict[str, Any] = {}
    if spec["case"].startswith("csv_"):
        rc, text = _cli("train", "--data", spec["data"], "--task", "tabular", "--target", "survived", "--epochs", "1",
                        "--bs", "8", "--seed", "0", "--out", str(out))
        if rc == 0:
            cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
            facts["columns"] = sorted(c for c in CSV_COLUMNS if c in json.dumps(cfg.get("roles")))
            text_cfg = json.dumps(cfg.get("processor"), ensure_ascii=False)
            facts["cities"] = sorted({row[2] for row in _table_rows() if row[2] in text_cfg})
    elif spec["case"] == "yaml_python_tag":
        rc, text = _cli("train", "--recipe", spec["recipe"], "--data", spec["data"], *img_args)
    elif spec["case"] == "weights_pickle":
        args = list(img_args)
        args[args.index("none")] = spec["weights"]
        rc, text = _cli("train", "--data", spec["data"], *args)
    elif spec["case"] == "model_pickle":
        import torch

        rc, text = _cli("train", "--data", spec["data"], *img_args)
        if rc != 0:
            return dict(ok=False, error="could not train the model to plant the pickle in: " + (_cli_error(text) or ""))
        torch.save({"head.weight": torch.zeros(1), "extra": _RunsCode(spec["payload"])}, out / "model.safetensors")
        rc, text = _cli("predict", str(out), str(next(Path(spec["data"]).glob("cats/*.jpg"))))
    else:
        rc, text = _cli("train", "--data", spec["data"], *img_args)
        m = re.search(r"train / valid images\D+(\d+) / (\d+)", text)
        if m:
            facts["n_items"] = int(m.group(1)) + int(m.group(2))
        if rc == 0 and spec.get("refs"):
            from quicklearn.tasks.vision.images import decode_image

            p = next(Path(spec["data"]).rglob(spec["bad"]))
            facts["pixel_diff"] = _pixel_diff(decode_image(p).permute(1, 2, 0).numpy(), spec["refs"])
            facts["included"] = facts.get("n_items") == N_GOOD + 1
    return dict(ok=rc == 0, error=None if rc == 0 else _cli_error(text), traceback="Traceback (most recent" in text,
                facts=facts)


def run_fastai(spec: dict, work: Path) -> dict:
    case = spec["case"]
    if case.startswith("csv_"):
        from fastai.tabular.all import Categorify, FillMissing, Normalize, TabularDataLoaders, accuracy, tabular_learner

        dls = TabularDataLoaders.from_csv(spec["data"], path=work, y_names="survived", cat_names=["city"],
                                          cont_names=["age", "income"], procs=[Categorify, FillMissing, Normalize],
                                          bs=8, valid_pct=0.25, seed=0)
        learn = tabular_learner(dls, layers=[16], metrics=accuracy)
        with learn.no_bar(), learn.no_logging():
            learn.fit(1)
        return dict(ok=True, facts=dict(columns=sorted(dls.cat_names + dls.cont_names),
                                        cities=[str(c) for c in dls.classes["city"] if c != "#na#"]))
    from fastai.vision.all import ImageDataLoaders, Resize, accuracy, load_learner, resnet18, vision_learner

    if case == "model_pickle":  # fastai's exported model is a pickle of the whole Learner
        import torch

        torch.save({"model": _RunsCode(spec["payload"])}, work / "export.pkl")
        load_learner(work / "export.pkl")
        return dict(ok=True, facts={})
    dls = ImageDataLoaders.from_folder(spec["data"], valid_pct=0.25, seed=0, item_tfms=Resize(SIZE), bs=4,
                                       num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    if case == "weights_pickle":
        learn.load(str(Path(spec["weights"]).with_suffix("")), with_opt=False)  # Learner.load adds .pth
        return dict(ok=True, facts={})
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(1)
    train_items, valid_items = [str(p) for p in dls.train_ds.items], [str(p) for p in dls.valid_ds.items]
    items = train_items + valid_items
    facts: dict[str, Any] = dict(n_items=len(items), included=_find(items, spec["bad"]) >= 0,
                                 classes=[str(c) for c in dls.vocab])
    if case == "one_image_class":
        facts["single_in"] = "train" if any("/birds/" in p for p in train_items) else "valid"
    if spec.get("refs") and facts["included"]:
        i = _find(train_items, spec["bad"])
        x = dls.train_ds[i][0] if i >= 0 else dls.valid_ds[_find(valid_items, spec["bad"])][0]
        facts["pixel_diff"] = _pixel_diff(x, spec["refs"])  # the picture fastai decoded (before Resize)
    return dict(ok=True, facts=facts)


def run_keras(spec: dict, work: Path) -> dict:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    case = spec["case"]
    if case.startswith("csv_"):  # Keras reads no CSV: pandas, as in the Keras structured-data tutorials
        import pandas as pd

        df = pd.read_csv(spec["data"])
        y = (df.pop("survived") == "yes").astype("float32").to_numpy()
        x = pd.get_dummies(df, columns=["city"]).astype("float32")
        model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
        model.fit(x.to_numpy(), y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
        return dict(ok=True, facts=dict(columns=sorted(c for c in CSV_COLUMNS if c in df.columns),
                                        cities=sorted(str(c) for c in df["city"].unique())))
    if case == "weights_pickle":  # Keras reads no .pth: with the torch backend, torch.load does
        import torch

        torch.load(spec["weights"])
        return dict(ok=True, facts={})
    if case == "model_pickle":  # Keras' own format: a .keras file whose Lambda layer holds Python bytecode
        sentinel = Path(spec["sentinel"])
        fn = eval(f"lambda x: (exec({spec['payload']!r}), x)[1]")  # the code is a constant of the lambda's bytecode
        model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(fn), keras.layers.Dense(1)])
        model.save(work / "model.keras")
        sentinel.unlink(missing_ok=True)  # building the model above ran the lambda once: only loading counts
        keras.models.load_model(work / "model.keras")
        return dict(ok=True, facts={})
    train, val = keras.utils.image_dataset_from_directory(spec["data"], validation_split=0.25, subset="both", seed=0,
                                                          image_size=(SIZE, SIZE), batch_size=4, format="grain")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(len(train.class_names))])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=1, verbose=0)
    items = list(train.file_paths) + list(val.file_paths)
    facts: dict[str, Any] = dict(n_items=len(items), included=_find(items, spec["bad"]) >= 0,
                                 classes=list(train.class_names))
    if case == "one_image_class":
        facts["single_in"] = "train" if any("/birds/" in p for p in train.file_paths) else "valid"
    if spec.get("refs") and facts["included"]:
        ds = keras.utils.image_dataset_from_directory(spec["data"], shuffle=False, image_size=(SIZE, SIZE),
                                                      batch_size=None, format="grain", verbose=False)
        i = _find(list(ds.file_paths), spec["bad"])
        x = next(x for j, (x, _) in enumerate(ds) if j == i)  # unshuffled: the order of file_paths
        facts["pixel_diff"] = _pixel_diff(keras.ops.convert_to_numpy(x), spec["refs"])
    return dict(ok=True, facts=facts)


WORKERS = {"quicklearn": run_quicklearn, "fastai": run_fastai, "keras": run_keras}


def worker_main(tool: str, spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    try:
        result = WORKERS[tool](spec, spec_path.parent)
    except BaseException as e:  # noqa: BLE001 - the point is to record what the tool raised
        traceback.print_exc()
        tb = traceback.extract_tb(e.__traceback__)
        result = dict(ok=False, error=f"{type(e).__name__}: {e}", raised_in=Path(tb[-1].filename).name if tb else "",
                      traceback=True)
    print(RESULT + json.dumps(result, default=str), flush=True)


# ---- the parent: run each (input, tool), classify, print the table ------------------------------------------
def run_one(case: Case, tool: str, root: Path, timeout: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"{case.name}-{tool}-", dir=root))
    spec = dict(case=case.name, **case.build(work))
    (work / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "QUICKLEARN_CACHE": str(work / "qlcache"), "KERAS_BACKEND": "torch", "COLUMNS": "200",
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--worker", tool, str(work / "spec.json")], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        text, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and anything it started (the quicklearn CLI)
        text, _ = proc.communicate()
        timed_out = True
    wall = time.perf_counter() - t0
    lines = text.splitlines()
    result = next((json.loads(ln[len(RESULT):]) for ln in reversed(lines) if ln.startswith(RESULT)), None)
    output = "\n".join(ln for ln in lines if not ln.startswith(RESULT))
    (work / "output.txt").write_text(output)
    verdict, detail = classify(spec, tool, result, output, timed_out, (work / SENTINEL).exists())
    detail = detail.replace(str(work), "TMP")  # the run's temp folder says nothing and makes the table wide
    return dict(case=case.name, tool=tool, outcome=verdict, detail=detail, wall_s=wall, work=str(work))


def _plain(text: str) -> str:
    """`text` without terminal colour codes (torch's messages carry some)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _names_input(message: str, names: list[str]) -> bool:
    return any(n.lower() in message.lower() for n in names)


def classify(spec: dict, tool: str, result: dict | None, output: str, timed_out: bool, code_ran: bool) -> tuple[str, str]:
    """The outcome class of one run and a one-line reason."""
    names = spec.get("names_by_tool", {}).get(tool) or spec.get("names", [])
    if code_ran:
        after = f"; then {result['error']}" if result and result.get("error") else ""
        return "silent", f"the code in the file ran (sentinel written){after}"
    if timed_out:
        return "hang", f"no result in {TIMEOUT_S} s"
    if result is None:
        return "traceback", "the process died without a result: " + (output.strip().splitlines() or ["(no output)"])[-1]
    if not result["ok"]:
        err = _plain(result.get("error") or "").strip()
        first = err.splitlines()[0] if err else "(no message)"
        where = f" [raised in {result['raised_in']}]" if result.get("raised_in") else ""
        flag = " [traceback printed]" if tool == "quicklearn" and result.get("traceback") else ""
        kind = "clear error" if _names_input(err, names) else "traceback"
        if spec["expect"] == "refuse":
            first += " (refused; no code ran)"
        return kind, first + where + flag
    facts = result.get("facts", {})
    expect, warned = spec["expect"], _warned(output, spec.get("bad"))
    if expect in ("refuse", "error"):
        return "silent", f"accepted the input: {facts}"
    if expect == "skip":
        if facts.get("included") or facts.get("n_items", N_GOOD) > N_GOOD:
            return "silent", f"trained on {spec['bad']} ({facts.get('n_items')} images)"
        return ("handled", f"skipped {spec['bad']} with a warning naming it") if warned else \
            ("silent", f"left {spec['bad']} out without a word")
    if expect == "use":
        if facts.get("n_items") != N_GOOD + 1 and not facts.get("included"):
            return "silent", f"left {spec['bad']} out ({facts.get('n_items')} images)" + (" with a warning" if warned else "")
        diff = facts.get("pixel_diff")
        if diff is None:
            return "silent", "used it, but its pixels could not be checked"
        if diff > MAX_PIXEL_DIFF:
            return "silent", f"trained on a wrong picture: mean |diff| {diff:.0f}/255 from the right one"
        return "handled", f"used it, right pixels (mean |diff| {diff:.1f}/255)"
    if expect == "exact":
        if facts.get("n_items") != N_GOOD:
            return "silent", f"followed the loop: {facts.get('n_items')} images from {N_GOOD} files"
        return "handled", f"did not follow the loop ({N_GOOD} images)"
    if expect == "notice":
        where = f", its one image only in {facts['single_in']}" if facts.get("single_in") else ""
        if _noticed(output, spec["bad"]):
            return "handled", f"trained and warned about '{spec['bad']}'{where}"
        return "silent", f"trained with no word about '{spec['bad']}'{where}"
    if expect == "table":
        if facts.get("columns") != sorted(CSV_COLUMNS):
            return "silent", f"trained on the wrong columns: {facts.get('columns')}"
        if "Zürich" not in facts.get("cities", []):
            return "silent", f"mangled the text: cities {facts.get('cities')}"
        return "handled", "parsed the columns and the text right"
    raise ValueError(expect)


def _warned(output: str, bad: str | None) -> bool:
    return bool(bad) and any(bad in ln and re.search(r"warn|skip|unreadable|ignor", ln, re.I) for ln in output.splitlines())


def _noticed(output: str, cls: str) -> bool:
    return any(cls in ln and re.search(r"\b(1|one|single) (image|example|item)|only|warn", ln, re.I)
               for ln in output.splitlines())


def versions() -> str:
    code = ("import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
            "('quicklearn', 'fastai', 'keras', 'grain', 'torch', 'pillow', 'pandas')))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()


def table(rows: list[dict], cases: list[Case], tools: list[str]) -> str:
    by = {(r["case"], r["tool"]): r for r in rows}
    out = ["| input | " + " | ".join(TOOL_TITLES[t] for t in tools) + " |", "|---" * (len(tools) + 1) + "|"]
    for c in cases:
        cells = [by[(c.name, t)]["outcome"] if (c.name, t) in by else "n/a" for t in tools]
        out.append(f"| {c.title} | " + " | ".join(cells) + " |")
    classes = ("handled", "clear error", "traceback", "hang", "silent")
    totals = []
    for t in tools:
        counts = [sum(1 for r in rows if r["tool"] == t and r["outcome"] == k) for k in classes]
        totals.append(", ".join(f"{n} {k}" for n, k in zip(counts, classes) if n))
    out.append("| **total** | " + " | ".join(totals) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=[c.name for c in CASES])
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S)
    ap.add_argument("--keep", action="store_true", help="Keep the temp folders (each run's output.txt) and print where.")
    args = ap.parse_args()
    cases = [c for c in CASES if c.name in args.cases]
    print(versions(), flush=True)
    rows = []
    root = Path(tempfile.mkdtemp(prefix="bad-inputs-vs-"))
    t0 = time.perf_counter()
    for c in cases:
        for t in args.tools:
            if t not in c.tools:
                continue
            r = run_one(c, t, root, args.timeout)
            rows.append(r)
            print(f"{c.name:20s} {t:10s} {r['outcome']:12s} {r['wall_s']:5.1f} s  {r['detail']}", flush=True)
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s\n")
    print(table(rows, cases, args.tools))
    print("\nWhat each did (first line of the error, or what was checked):\n")
    titles = {c.name: c.title for c in cases}
    for r in rows:
        print(f"- {titles[r['case']]} / {TOOL_TITLES[r['tool']]}: **{r['outcome']}**: {r['detail']}")
    if args.keep:
        print(f"\nrun folders: {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
