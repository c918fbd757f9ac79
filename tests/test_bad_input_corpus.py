"""The bad-input corpus of issue 10: every input is generated here (no committed binaries), one table per kind.

Each row is handled correctly (the test asserts the result) or refused with a `QuicklearnError` whose one-line
message names the file, column or key at fault; errors are also run through `quicklearn train` (typer's
CliRunner): exit code 1, one "error:" line on stderr, no "Traceback". Inputs that could hang (a FIFO, a
decompression bomb, YAML aliases) run under a time limit, the bombs in a subprocess under a memory limit.
tests/test_bad_inputs.py covers the unusual-but-valid image modes (CMYK, 16-bit, palette, alpha) and is not repeated.

Unreadable files: CI runs as root, and root reads a chmod-000 file. The permission error here is real: the test
drops its effective uid to `nobody` (os.seteuid) around the call, so the kernel refuses the open with EACCES.
"""

from __future__ import annotations

import io
import logging
import os
import resource
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from conftest import write_image
from PIL import Image
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.config.files import load_recipe
from quicklearn.config.run import run_recipe
from quicklearn.tasks.vision.recipe import VisionRecipe

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = ["--weights", "none", "--arch", "resnet10t", "--epochs", "1", "--freeze-epochs", "0", "--size", "16", "--bs", "4"]


# ---- helpers ------------------------------------------------------------------------------------------------
def healthy_folder(root: Path, classes: tuple[str, str] = ("cats", "dogs"), n: int = 5) -> Path:
    for c, color in zip(classes, ((200, 40, 40), (40, 40, 200))):
        for i in range(n):
            write_image(root / c / f"{c}{i}.png", size=(20 + i, 18), color=color)
    return root


def load(data: Path, **kw: Any) -> ql.DataLoaders:
    return ql.image_dataloaders(data, **{"size": 16, "presize": 18, "num_workers": 0, **kw})


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "quicklearn" and r.levelno >= logging.WARNING]


def invoke(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_cli_error(r, *needles: str) -> None:
    """Exit 1, no traceback anywhere, and the error is one line on stderr that contains every needle."""
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.stdout and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def finishes(fn: Callable[[], Any], seconds: float, unblock: Callable[[], None] = lambda: None) -> Any:
    """fn() run in a thread: its result, or a test failure (not a hung test run) when it is still running after
    `seconds`; `unblock` then releases what it waits on."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 (re-raised in the test's thread)
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        unblock()
        t.join(10)
        pytest.fail(f"still running after {seconds} s: it hangs")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def png_claiming(width: int, height: int) -> bytes:
    """A valid ~100-byte PNG whose IHDR claims width x height RGB pixels (a decompression-bomb header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 256)) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16 x 16 JPEG whose frame header (SOF0) is patched to claim width x height pixels."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def truncated_jpeg(path: Path) -> Path:
    arr = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


# ---- 1. image folders: a healthy two-class folder plus one bad thing --------------------------------------------
@dataclass(frozen=True)
class FolderCase:
    """`make(root)` adds the bad input to a healthy folder and returns its path; it must be skipped with one
    warning that names it and says `why` (why=None: nothing to warn about, e.g. a symlink loop not followed)."""

    make: Callable[[Path], Path]
    why: str | None


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _symlink(target: str, link: Path) -> Path:
    os.symlink(target, link)
    return link


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _dir(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("a folder that only looks like an image file")
    return path


def _magic_then_garbage(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return path


FOLDER_CASES = {
    "truncated-jpeg": FolderCase(lambda r: truncated_jpeg(r / "cats" / "half.jpg"), "unreadable image"),
    "zero-byte-jpeg": FolderCase(lambda r: _write(r / "cats" / "empty.jpg", b""), "not an image despite its extension"),
    "text-named-jpg": FolderCase(lambda r: _write(r / "dogs" / "page.jpg", b"<html>404</html>"),
                                 "not an image despite its extension"),
    "png-magic-then-garbage": FolderCase(lambda r: _magic_then_garbage(r / "dogs" / "noise.png"), "unreadable image"),
    "png-bomb-header": FolderCase(lambda r: _write(r / "cats" / "bomb.png", png_claiming(100_000, 100_000)), "decompression bomb"),
    "jpeg-bomb-header": FolderCase(lambda r: _write(r / "dogs" / "bomb.jpg", jpeg_claiming(60_000, 60_000)), "decompression bomb"),
    "dir-symlink-loop": FolderCase(lambda r: _symlink("..", r / "cats" / "loop"), None),
    "file-symlink-loop": FolderCase(lambda r: _symlink("b.jpg", r / "cats" / "a.jpg") if _symlink("a.jpg", r / "cats" / "b.jpg")
                                    else None, "cannot be opened: Too many levels of symbolic links"),
    "dangling-symlink": FolderCase(lambda r: _symlink(str(r / "nowhere.jpg"), r / "dogs" / "gone.jpg"), "missing"),
    "fifo-named-jpg": FolderCase(lambda r: _fifo(r / "cats" / "pipe.jpg"), "not a regular file"),
    "folder-named-jpg": FolderCase(lambda r: _dir(r / "dogs" / "album.jpg"), None),
    "macos-resource-fork": FolderCase(lambda r: _write(r / "cats" / "._cats0.png", b"\x00\x05\x16\x07" * 8), None),
}


@pytest.mark.parametrize("name", FOLDER_CASES)
def test_bad_file_in_an_image_folder_is_skipped_by_name(name: str, tmp_path: Path, caplog) -> None:
    case = FOLDER_CASES[name]
    root = healthy_folder(tmp_path / "data")
    bad = case.make(root)
    unblock = (lambda: os.close(os.open(bad, os.O_WRONLY | os.O_NONBLOCK))) if name == "fifo-named-jpg" else (lambda: None)
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        dls = finishes(lambda: load(root), 60, unblock)
    assert dls.vocab.classes == ("cats", "dogs")  # a folder named album.jpg is no class, a loop adds nothing
    assert dls.train.n + dls.valid.n == 10 and dls.train.images.shape[1:] == (3, 18, 18)
    assert all(p.name.startswith(("cats", "dogs")) for p in dls.train_paths + dls.valid_paths)
    msgs = warnings_of(caplog)
    if case.why is None:
        assert msgs == []
    else:
        (msg,) = [m for m in msgs if "skipped" in m]
        assert case.why in msg and str(bad) in msg, msg


def test_bad_files_in_a_folder_through_the_cli(tmp_path: Path, caplog) -> None:
    """Every row of the folder table in one messy folder: `quicklearn train` finishes, trains on the 10 good
    images and exports a model that loads; the bad files are only named in warnings."""
    root = healthy_folder(tmp_path / "data", n=6)
    bad = {name: case.make(root) for name, case in FOLDER_CASES.items()}
    fifo = bad["fifo-named-jpg"]
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        r = finishes(lambda: invoke("train", "--data", root, *TRAIN, "--out", tmp_path / "run"), 120,
                     lambda: os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)))
    assert r.exit_code == 0 and "Traceback" not in r.output, (r.output, r.exception)
    model = ql.load(tmp_path / "run")
    assert model.classes == ["cats", "dogs"]
    skipped = " ".join(m for m in warnings_of(caplog) if "skipped" in m)
    decode_failures = [n for n, c in FOLDER_CASES.items() if c.why in ("unreadable image", "decompression bomb")]
    assert f"skipped {len(decode_failures)} unreadable image(s)" in skipped  # one warning names the first three
    for name, case in FOLDER_CASES.items():
        if name not in decode_failures:
            assert (case.why is not None) == (str(bad[name]) in skipped), name


@pytest.mark.parametrize("classes", [("café au lait", "日本"), ("with  two spaces", "tab\tand ñ")])
def test_unicode_and_space_labels_train_export_and_predict(classes: tuple[str, str], tmp_path: Path) -> None:
    root = healthy_folder(tmp_path / "data", classes=classes, n=6)
    assert load(root).vocab.classes == tuple(sorted(classes))
    r = invoke("train", "--data", root, *TRAIN, "--out", tmp_path / "run")
    assert r.exit_code == 0, (r.output, r.exception)
    model = ql.load(tmp_path / "run")
    assert model.classes == sorted(classes)  # through config.json and back, byte for byte
    pred = model.predict(next((root / classes[0]).glob("*.png")))
    assert pred.label in classes


def test_a_class_folder_with_one_image_trains_and_says_it_has_no_validation(tmp_path: Path, caplog) -> None:
    root = healthy_folder(tmp_path / "data")
    only = write_image(root / "birds" / "only.png", color=(40, 200, 40))
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        dls = load(root)
    assert dls.vocab.classes == ("birds", "cats", "dogs") and only in dls.train_paths
    assert any("class 'birds' has no validation items" in m for m in warnings_of(caplog))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_decompression_bombs_never_allocate_gigabytes(tmp_path: Path) -> None:
    """In a subprocess limited to 6 GiB of address space (torch itself takes ~3): a decoder that believed the
    header would need 12 GB (JPEG 60000 x 60000) or 30 GB (PNG 100000 x 100000) and fail or be killed."""
    (tmp_path / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    (tmp_path / "bomb.jpg").write_bytes(jpeg_claiming(60_000, 60_000))
    code = textwrap.dedent(f"""
        import resource, time
        from quicklearn.tasks.vision.images import UnreadableImage, decode_image
        for name in ("bomb.png", "bomb.jpg"):
            t = time.perf_counter()
            try:
                decode_image({str(tmp_path)!r} + "/" + name)
                print(name, "decoded")
            except UnreadableImage as e:
                print(name, "refused", round(time.perf_counter() - t, 2), e)
        print("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, preexec_fn=limit,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(ln.split(" ", 1) for ln in out.stdout.splitlines())
    for name in ("bomb.png", "bomb.jpg"):
        assert lines[name].startswith("refused") and "decompression bomb" in lines[name], lines[name]
        assert float(lines[name].split()[1]) < 5  # refused from the header, not after decoding
    assert int(lines["peak_mb"]) < 2_000


# ---- unreadable files: a real permission error ------------------------------------------------------------------
@contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as `nobody` (effective uid only) when the tests run as root, so chmod 000 really refuses."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.seteuid(65534)
    except PermissionError:
        pytest.skip("cannot drop privileges here")
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture()
def shared_dir() -> Iterator[Path]:
    """A folder `nobody` can enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="ql-perm-"))
    d.chmod(0o777)
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def test_permission_denied_image_is_skipped_by_name(shared_dir: Path, caplog, monkeypatch) -> None:
    monkeypatch.setenv("QUICKLEARN_IMAGE_CACHE", "0")  # no cache files: nobody cannot write root's cache folder
    root = healthy_folder(shared_dir / "data")
    locked = root / "cats" / "cats0.png"
    out = shared_dir / "batch.png"
    assert invoke("show-batch", "--data", root, "--out", out, "--size", 16).exit_code == 0  # as root: it reads all 10
    out.unlink()
    locked.chmod(0)
    with caplog.at_level(logging.WARNING, logger="quicklearn"), unprivileged():
        with pytest.raises(PermissionError):
            locked.read_bytes()  # the premise: this process cannot read it
        dls = load(root)
        r = invoke("show-batch", "--data", root, "--out", out, "--size", 16)
    assert dls.train.n + dls.valid.n == 9 and locked not in dls.train_paths + dls.valid_paths
    assert r.exit_code == 0 and "Traceback" not in r.output and out.exists(), r.output
    msgs = [m for m in warnings_of(caplog) if "skipped" in m]
    assert len(msgs) == 2 and all("cannot be opened: Permission denied" in m and str(locked) in m for m in msgs)


def test_permission_denied_csv_is_a_one_line_error(shared_dir: Path) -> None:
    table = shared_dir / "table.csv"
    table.write_text("age,city,y\n" + "".join(f"{i},c{i % 3},{'ab'[i % 2]}\n" for i in range(20)), encoding="utf-8-sig")
    ql.tabular_dataloaders(table, "y")  # as root: fine (and every lazy import is done)
    table.chmod(0)
    with unprivileged():
        with pytest.raises(ql.DataError, match="Permission denied") as e:
            ql.tabular_dataloaders(table, "y")
        r = invoke("train", "--data", table, "--target", "y", "--out", shared_dir / "run")
    assert str(table) in str(e.value) and "\n" not in str(e.value)
    assert_cli_error(r, str(table), "Permission denied")


# ---- 2. CSVs of image paths (vision) ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CsvCase:
    """A CSV written from `text` in `encoding` beside 10 images imgs/0..9.png (odd: cat, even: dog); `error` is
    the phrase of the expected one-line error (naming the CSV and `names`), or None: it loads, and `check` holds."""

    text: str
    y: str = "label"
    encoding: str = "utf-8"
    error: str | None = None
    names: str = ""
    check: Callable[[Any], None] | None = None
    kind: str | None = None


def _rows(sep: str = ",", label: Callable[[int], Any] = lambda i: "cat" if i % 2 else "dog", extra: str = "") -> str:
    head = sep.join(["file", "label"] + ([extra] if extra else []))
    return head + "\n" + "".join(sep.join([f"imgs/{i}.png", str(label(i))] + ([""] if extra else [])) + "\n" for i in range(10))


def _classes(*names: str) -> Callable[[Any], None]:
    def check(dls: Any) -> None:
        assert dls.vocab.classes == names and dls.train.n + dls.valid.n == 10

    return check


VISION_CSVS = {
    "bom": CsvCase("\ufeff" + _rows(), check=_classes("cat", "dog")),
    "latin-1": CsvCase(_rows(label=lambda i: "café" if i % 2 else "thé"), encoding="latin-1", check=_classes("café", "thé")),
    "semicolons": CsvCase(_rows(";"), check=_classes("cat", "dog")),
    "tabs-crlf": CsvCase(_rows("\t").replace("\n", "\r\n"), check=_classes("cat", "dog")),
    "all-empty-column": CsvCase(_rows(extra="notes"), check=_classes("cat", "dog")),
    "unicode-labels": CsvCase(_rows(label=lambda i: "café au lait" if i % 2 else "日本"), check=_classes("café au lait", "日本")),
    "missing-target": CsvCase(_rows(), y="lable", error="target column 'lable' not found", names="Did you mean 'label'?"),
    "single-class": CsvCase(_rows(label=lambda i: "cat"), error="only one class ('cat')"),
    "target-with-nan": CsvCase(_rows(label=lambda i: "" if i == 3 else ("cat" if i % 2 else "dog")),
                               error="1 item(s) have no label", names="3.png"),
    "all-empty-target": CsvCase(_rows(label=lambda i: ""), error="10 item(s) have no label"),
    "regression-target-inf": CsvCase(_rows(label=lambda i: "inf" if i == 4 else i / 3), kind="regression",
                                     error="is inf for", names="4.png"),
}


def _vision_csv(case: CsvCase, root: Path) -> Path:
    for i in range(10):
        write_image(root / "imgs" / f"{i}.png", color=(200, 30, 30) if i % 2 else (30, 30, 200))
    path = root / "labels.csv"
    path.write_bytes(case.text.encode(case.encoding))
    return path


@pytest.mark.parametrize("name", VISION_CSVS)
def test_vision_csv(name: str, tmp_path: Path) -> None:
    case = VISION_CSVS[name]
    path = _vision_csv(case, tmp_path)
    if case.error is None:
        case.check(load(path, y=case.y, kind=case.kind))  # type: ignore[misc]
        return
    with pytest.raises(ql.DataError) as e:
        load(path, y=case.y, kind=case.kind)
    msg = str(e.value)
    assert case.error in msg and str(path) in msg and case.names in msg and "\n" not in msg, msg
    args = ["--kind", case.kind] if case.kind else []
    r = invoke("train", "--data", path, "--target", case.y, *args, *TRAIN, "--out", tmp_path / "run")
    assert_cli_error(r, case.error, str(path), case.names)
    assert not (tmp_path / "run").exists()


def test_a_messy_vision_csv_trains_through_the_cli(tmp_path: Path) -> None:
    """BOM + ';' + an empty column + unicode labels, in one file: trained, exported, labels intact."""
    case = CsvCase("\ufeff" + _rows(";", label=lambda i: "café au lait" if i % 2 else "日本", extra="notes"))
    path = _vision_csv(case, tmp_path)
    r = invoke("train", "--data", path, "--target", "label", *TRAIN, "--out", tmp_path / "run")
    assert r.exit_code == 0 and "Traceback" not in r.output, (r.output, r.exception)
    assert ql.load(tmp_path / "run").classes == ["café au lait", "日本"]


# ---- 3. tables (tabular) ----------------------------------------------------------------------------------------
def _table(sep: str = ",", y: Callable[[int], Any] = lambda i: "yes" if i % 3 else "no", empty: bool = False,
           age: Callable[[int], Any] = lambda i: 20 + (i * 7) % 50 + 0.5, header: str = "age,city,y") -> str:
    cols = header.split(",") + (["notes"] if empty else [])
    lines = [sep.join(cols)]
    for i in range(30):
        lines.append(sep.join([str(age(i)), ["Zürich", "Genève", "Köln"][i % 3], str(y(i))] + ([""] if empty else [])))
    return "\n".join(lines) + "\n"


def _tabular_ok(kind: str, n: int, cats: list[str], conts: list[str], dropped: dict[str, str] | None = None):
    def check(dls: Any) -> None:
        assert dls.kind == kind and dls.train.n + dls.valid.n == n
        assert dls.roles.cat_names == cats and dls.roles.cont_names == conts
        for col, why in (dropped or {}).items():
            assert why in dls.roles.dropped[col]
        assert bool(dls.train.x.isfinite().all()) and bool(dls.valid.x.isfinite().all())
        if "city" in cats:  # the accents survived the encoding: three real levels
            assert dls.processor.levels["city"] == ["Genève", "Köln", "Zürich"]

    return check


TABLES = {
    "bom": CsvCase("\ufeff" + _table(), y="y", check=_tabular_ok("single", 30, ["city"], ["age"])),
    "latin-1": CsvCase(_table(), y="y", encoding="latin-1", check=_tabular_ok("single", 30, ["city"], ["age"])),
    "semicolons": CsvCase(_table(";"), y="y", check=_tabular_ok("single", 30, ["city"], ["age"])),
    "tabs": CsvCase(_table("\t"), y="y", check=_tabular_ok("single", 30, ["city"], ["age"])),
    "all-empty-column": CsvCase(_table(empty=True), y="y",
                                check=_tabular_ok("single", 30, ["city"], ["age"], {"notes": "all values are missing"})),
    "target-with-nan": CsvCase(_table(y=lambda i: "" if i in (4, 9) else ("yes" if i % 3 else "no")), y="y",
                               check=_tabular_ok("single", 28, ["city"], ["age"])),
    "duplicate-header": CsvCase(_table(header="age,age,y"), y="y", check=_tabular_ok("single", 30, ["age.1"], ["age"])),
    "bom-and-quoted-delimiter-header": CsvCase("\ufeff" + _table(";", header='";",city,y'), y="y",
                                               check=_tabular_ok("single", 30, ["city"], [";"])),
    "missing-target": CsvCase(_table(), y="target", error="target column 'target' not found", names="columns are"),
    "single-class": CsvCase(_table(y=lambda i: "yes"), y="y", error="target 'y' has one class only ('yes')"),
    "all-empty-target": CsvCase(_table(y=lambda i: ""), y="y", error="needs at least 2 rows with a target 'y', found 0"),
    "regression-target-inf": CsvCase(_table(y=lambda i: "inf" if i == 5 else i * 1.37), y="y",
                                     error="target 'y' row 5 has inf", names="finite"),
    "feature-with-inf": CsvCase(_table(age=lambda i: "-inf" if i == 7 else i * 1.5 + 0.25), y="y",
                                error="column 'age' row 7 has -inf", names="leave it empty"),
    "header-only": CsvCase("age,city,y\n", y="y", error="has a header but no rows"),
    "binary-named-csv": CsvCase("", y="y", error="cannot be read as CSV"),
}


@pytest.mark.parametrize("name", TABLES)
def test_table(name: str, tmp_path: Path, caplog) -> None:
    case = TABLES[name]
    path = tmp_path / "table.csv"
    if name == "binary-named-csv":  # a PNG saved as .csv
        write_image(path, fmt="PNG")
    else:
        path.write_bytes(case.text.encode(case.encoding))
    if case.error is None:
        with caplog.at_level(logging.WARNING, logger="quicklearn"):
            dls = ql.tabular_dataloaders(path, case.y, seed=0)
        case.check(dls)  # type: ignore[misc]
        if name == "target-with-nan":
            assert any("2 row(s) have no 'y' (first rows [4, 9])" in m for m in warnings_of(caplog))
        return
    with pytest.raises(ql.DataError) as e:
        ql.tabular_dataloaders(path, case.y, seed=0)
    msg = str(e.value)
    assert case.error in msg and str(path) in msg and case.names in msg and "\n" not in msg, msg
    r = invoke("train", "--task", "tabular", "--data", path, "--target", case.y, "--epochs", 1, "--out", tmp_path / "run")
    assert_cli_error(r, case.error, str(path), case.names)
    assert not (tmp_path / "run").exists()


def test_a_messy_table_trains_through_the_cli(tmp_path: Path) -> None:
    """latin-1 + ';' + an all-empty column + rows without a target, in one file: trained, and predicts."""
    path = tmp_path / "messy.csv"
    path.write_bytes(_table(";", empty=True, y=lambda i: "" if i == 2 else ("yes" if i % 3 else "no")).encode("latin-1"))
    r = invoke("train", "--data", path, "--target", "y", "--epochs", 1, "--out", tmp_path / "run")
    assert r.exit_code == 0 and "Traceback" not in r.output, (r.output, r.exception)
    model = ql.load(tmp_path / "run")
    assert model.predict({"age": 33.5, "city": "Köln", "notes": None}).label in ("no", "yes")


# ---- 4. recipes -------------------------------------------------------------------------------------------------
PWNED = "PWNED"  # a file that YAML tags try to create; it must never exist

RECIPES = {
    "unknown-key": ("task: vision\nmodel:\n  archh: resnet18\n", "unknown key 'model.archh'. Did you mean 'arch'?"),
    "unknown-section": ("task: vision\nfitt:\n  epochs: 2\n", "unknown key 'fitt'. Did you mean 'fit'?"),
    "wrong-type": ("task: vision\ntraining:\n  bs: lots\n", "training.bs: "),
    "wrong-type-section": ("task: vision\nfit: 3\n", "fit: Input should be a valid dictionary"),
    "negative-epochs": ("task: vision\nfit:\n  epochs: -2\n", "fit.epochs: Input should be greater than or equal to 0"),
    "nan-learning-rate": ("task: vision\nfit:\n  base_lr: .nan\n", "fit.base_lr: "),
    "task-is-a-list": ("task: [vision]\n", "task: ['vision'] is not a task"),
    "unknown-task": ("task: audio\n", "task: 'audio' is not a task"),
    "not-a-mapping": ("- task: vision\n", "a recipe must be a mapping of sections"),
    "python-apply-tag": ('!!python/object/apply:os.system ["echo pwned > {pwned}"]\n', "python/object/apply:os.system"),
    "python-tag-in-a-value": ('task: vision\ndata:\n  path: !!python/object/apply:os.system ["echo pwned > {pwned}"]\n',
                              "Python tags (!!python/...) are refused, never run"),
    "python-new-tag": ("task: vision\nmodel: !!python/object/new:subprocess.Popen [[touch, {pwned}]]\n", "python/object/new"),
    "python-name-tag": ("task: vision\nmodel:\n  arch: !!python/name:os.system\n", "python/name:os.system"),
    "alias-loop": ("task: vision\nfit: &a\n  epochs: 1\n  more: *a\n", "refers to the value that contains it"),
    "billion-laughs": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
                       + "task: vision\n", "more than 100,000 values"),
    "deep-nesting": ("task: vision\nfit: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    "tab-indentation": ("task: vision\nfit:\n\tepochs: 2\n", "not valid YAML at line 3, column 1"),
    "unclosed-bracket": ("task: vision\nfit: [1, 2\n", "not valid YAML at line 3"),
    "not-utf8": ("task: caf\xe9\n", "not UTF-8 text"),
    "value-not-fitting-its-tag": ("task: vision\nfit:\n  epochs: !!int three\n", "a value does not fit its type or !!tag"),
    "unset-env-var": ("task: vision\ndata:\n  path: ${QL_SURELY_UNSET_VAR}/x\n", "data.path: environment variable"),
    "data-path-missing": ("task: vision\ndata:\n  path: {missing}\n", "no such folder"),
}


@pytest.mark.parametrize("name", RECIPES)
def test_recipe(name: str, tmp_path: Path, monkeypatch) -> None:
    text, phrase = RECIPES[name]
    monkeypatch.chdir(tmp_path)  # a relative PWNED would land here too
    pwned, missing = tmp_path / PWNED, tmp_path / "no" / "such" / "data"
    text, phrase = text.replace("{pwned}", str(pwned)).replace("{missing}", str(missing)), phrase.replace("{missing}", str(missing))
    path = tmp_path / "recipe.yaml"
    path.write_bytes(text.encode("latin-1" if name == "not-utf8" else "utf-8"))
    named = str(missing) if name == "data-path-missing" else str(path)
    t0 = time.perf_counter()
    with pytest.raises(ql.QuicklearnError) as e:
        finishes(lambda: run_recipe(load_recipe(path), out=tmp_path / "run"), 60)
    assert time.perf_counter() - t0 < 10  # refused at once, not after expanding or training anything
    msg = str(e.value)
    assert isinstance(e.value, (ql.ConfigError, ql.DataError)) and phrase in msg and named in msg and "\n" not in msg, msg
    r = invoke("train", "--recipe", path, "--out", tmp_path / "run")
    assert_cli_error(r, phrase, named)
    assert not pwned.exists() and not (tmp_path / "run").exists()


def test_an_empty_recipe_is_the_default_vision_recipe(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing but a comment\n")
    assert load_recipe(tmp_path / "empty.yaml") == VisionRecipe()
