"""The wheel holds every module of the tree: an editable install would hide a package missing from pyproject."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_every_module_under_quicklearn(tmp_path):
    src = tmp_path / "src"  # a clean copy: a build/ folder left by an earlier build would fill in what is missing
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "quicklearn", "cli", "recipes", "examples"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheel = next(tmp_path.glob("quicklearn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "quicklearn").rglob("*.py")}
    assert modules and modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    cli = {f"quicklearn_cli/{p.name}" for p in (ROOT / "cli").glob("*.py")}
    assert cli <= names, f"missing from the wheel: {sorted(cli - names)}"
    assert {"quicklearn_recipes/vision.yaml", "quicklearn_recipes/tabular.yaml"} <= names
    page = {f"quicklearn/serving/http/page/{n}" for n in ("index.html", "page.css", "page.js")}  # `quicklearn serve`'s page
    assert page <= names, f"missing from the wheel: {sorted(page - names)}"
