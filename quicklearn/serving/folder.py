"""Writing a model folder: `model.safetensors` + `config.json` (+ the files the task needs), every file replaced
atomically and its checksum recorded in config.json. What is common to every task is written here; the data's
own part (its pipeline, pre-processing, tokenizer) comes from its DataLoaders' `folder_parts`.

    learn.export("model_dir")          # then quicklearn.load("model_dir") (serving/load.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save_file

from quicklearn._version import __version__
from quicklearn.core.errors import ConfigError, QuicklearnError
from quicklearn.core.faults import kill_point
from quicklearn.core.fileio import atomic_path, write_json
from quicklearn.data.kinds import get_kind
from quicklearn.data.thresholds import DEFAULT_THRESH, Thresh, check_thresh
from quicklearn.serving.format import CONFIG, FORMAT_VERSION, WEIGHTS, file_checksums

if TYPE_CHECKING:
    from quicklearn.train.learner import Learner

__all__ = ["export_learner"]


def export_learner(learn: "Learner", path: str | Path, thresh: Thresh | None = None) -> Path:
    """Write `learn`'s model to the directory `path` (created if needed); files are replaced atomically.
    thresh: a multi-label model's decision threshold(s), a float or {label: float} (see `fit_thresholds`)."""
    dls = learn.dls
    task = getattr(dls, "task", None)
    if not isinstance(task, str):
        raise QuicklearnError(f"export needs data that says which task it is ({type(dls).__name__} does not): build "
                              "the Learner with vision_learner, tabular_learner, text_learner or another task's builder.")
    if thresh is not None and not get_kind(learn.dls.kind).thresholded:
        raise ConfigError(f"export(thresh=...) is for multi-label models; this one's target is {learn.dls.kind}. Leave thresh out.")
    thresh = DEFAULT_THRESH if thresh is None else check_thresh(thresh, list(learn.dls.vocab.classes), "export thresh")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    own, files = dls.folder_parts(learn, path)  # the task's part first: its pre-processing, tokenizer files, ...
    state = {k: v.detach().cpu().contiguous() for k, v in learn.model.state_dict().items()}
    with atomic_path(path / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    kill_point("export")  # test hook (quicklearn/core/faults.py): a crash between the weights and config.json
    config = {
        "format_version": FORMAT_VERSION,
        "quicklearn_version": __version__,
        "task": task,
        "model": learn.config.get("model", {}),
        "kind": dls.kind,
        "classes": list(dls.vocab.classes) if dls.vocab else None,
        "target_stats": [learn.y_mean, learn.y_std] if get_kind(dls.kind).standardized else None,
        "recipe": learn.config.get("recipe"),
        "thresh": thresh,
    }
    config.update(own)
    written = [WEIGHTS, *files]
    config["checksums"] = file_checksums(path, written)
    write_json(path / CONFIG, config)
    return path


