"""quicklearn: point it at your data, get a strong fine-tuned model in minutes.

    import quicklearn as ql
    learn = ql.vision_learner("path/to/folder")
    learn.fine_tune(3)

The public names below load their module on first use (PEP 562), so `import quicklearn` and the CLI's
`--help` do not pay torch's and timm's import time until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quicklearn._version import __version__
from quicklearn.core.errors import ConfigError, DataError, QuicklearnError, TrainingError, WeightsError

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # the three-line API of each task
    "vision_learner": "quicklearn.tasks.vision.learner", "tabular_learner": "quicklearn.tasks.tabular.learner",
    "text_learner": "quicklearn.tasks.text.learner", "load": "quicklearn.serving.load",
    "collab_learner": "quicklearn.tasks.collab.learner",
    "text_dataloaders": "quicklearn.tasks.text.learner", "TextModel": "quicklearn.tasks.text.model",
    "TextPredictor": "quicklearn.tasks.text.predictor",
    "segmentation_learner": "quicklearn.tasks.segment.learner", "segmentation_dataloaders": "quicklearn.tasks.segment.data",
    # data
    "image_dataloaders": "quicklearn.tasks.vision.data", "DataLoaders": "quicklearn.tasks.vision.data",
    "AugmentConfig": "quicklearn.tasks.vision.augment", "Normalize": "quicklearn.tasks.vision.augment",
    "Resize": "quicklearn.tasks.vision.transforms", "CenterCrop": "quicklearn.tasks.vision.transforms",
    "RandomResizedCrop": "quicklearn.tasks.vision.transforms",
    "RegexLabel": "quicklearn.data.labels", "parent_label": "quicklearn.data.labels", "Vocab": "quicklearn.data.labels",
    "RandomSplitter": "quicklearn.data.split", "StratifiedSplitter": "quicklearn.data.split",
    "FolderSplitter": "quicklearn.data.split", "ColumnSplitter": "quicklearn.data.split", "IndexSplitter": "quicklearn.data.split",
    "TimeSplitter": "quicklearn.data.split",
    "tabular_dataloaders": "quicklearn.tasks.tabular.learner", "auto_epochs": "quicklearn.tasks.tabular.learner",
    "ColumnRoles": "quicklearn.tasks.tabular.data", "TabularProcessor": "quicklearn.tasks.tabular.data",
    "infer_roles": "quicklearn.tasks.tabular.data",
    # models
    "DEFAULT_ARCH": "quicklearn.tasks.vision.backbones", "create_body": "quicklearn.tasks.vision.backbones",
    "build_model": "quicklearn.tasks.vision.model", "TransferModel": "quicklearn.tasks.vision.model",
    "HeadConfig": "quicklearn.tasks.vision.heads", "import_weights": "quicklearn.tasks.vision.weights",
    "TabularModel": "quicklearn.tasks.tabular.model",
    # training
    "Learner": "quicklearn.train.learner", "LRFindResult": "quicklearn.train.learner",
    "Callback": "quicklearn.train.callbacks.base", "ProgressCallback": "quicklearn.train.callbacks.progress",
    "HistoryLogger": "quicklearn.train.callbacks.history", "EarlyStopping": "quicklearn.train.callbacks.monitor",
    "SaveBest": "quicklearn.train.callbacks.monitor", "Checkpoint": "quicklearn.train.callbacks.checkpoint",
    "TensorBoardLogger": "quicklearn.train.callbacks.tensorboard", "LRRecorder": "quicklearn.train.callbacks.recorder",
    "EMA": "quicklearn.train.callbacks.ema", "ReduceLROnPlateau": "quicklearn.train.callbacks.plateau",
    "ProgressiveResize": "quicklearn.tasks.vision.progressive", "mixup": "quicklearn.train.mix", "cutmix": "quicklearn.train.mix",
    # results
    "Predictor": "quicklearn.serving.predictor", "Prediction": "quicklearn.serving.predictor",
    "TabularPredictor": "quicklearn.tasks.tabular.predictor",
    "interpret": "quicklearn.analysis.interpret", "Interpretation": "quicklearn.analysis.interpretation",
    "fit_thresholds": "quicklearn.analysis.thresholds",
    "check": "quicklearn.analysis.check.api",
    "export_onnx": "quicklearn.serving.onnx",
    # tasks: the interface and the registry (a third-party task registers through the entry point quicklearn.tasks)
    "Task": "quicklearn.tasks.base", "get_task": "quicklearn.tasks.registry", "register_task": "quicklearn.tasks.registry",
    # process settings
    "tune_cpu_allocator": "quicklearn.core.runtime",
}

__all__ = [
    "__version__", *_EXPORTS,
    "QuicklearnError", "DataError", "ConfigError", "WeightsError", "TrainingError",
]


# public submodules, also loaded on first use: ql.distributed (rank helpers for torchrun runs), ql.errors
_SUBMODULES = {"distributed": "quicklearn.core.distributed", "errors": "quicklearn.core.errors"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quicklearn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute access
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .analysis.check.api import check
    from .analysis.interpret import interpret
    from .analysis.interpretation import Interpretation
    from .analysis.thresholds import fit_thresholds
    from .core.runtime import tune_cpu_allocator
    from .data.labels import RegexLabel, Vocab, parent_label
    from .data.split import (
        ColumnSplitter,
        FolderSplitter,
        IndexSplitter,
        RandomSplitter,
        StratifiedSplitter,
        TimeSplitter,
    )
    from .serving.load import load
    from .serving.onnx import export_onnx
    from .serving.predictor import Prediction, Predictor
    from .tasks.base import Task
    from .tasks.collab.learner import collab_learner
    from .tasks.registry import get_task, register_task
    from .tasks.segment.data import segmentation_dataloaders
    from .tasks.segment.learner import segmentation_learner
    from .tasks.tabular.data import ColumnRoles, TabularProcessor, infer_roles
    from .tasks.tabular.learner import auto_epochs, tabular_dataloaders, tabular_learner
    from .tasks.tabular.model import TabularModel
    from .tasks.tabular.predictor import TabularPredictor
    from .tasks.text.learner import text_dataloaders, text_learner
    from .tasks.text.model import TextModel
    from .tasks.text.predictor import TextPredictor
    from .tasks.vision.augment import AugmentConfig, Normalize
    from .tasks.vision.backbones import DEFAULT_ARCH, create_body
    from .tasks.vision.data import DataLoaders, image_dataloaders
    from .tasks.vision.heads import HeadConfig
    from .tasks.vision.learner import vision_learner
    from .tasks.vision.model import TransferModel, build_model
    from .tasks.vision.progressive import ProgressiveResize
    from .tasks.vision.transforms import CenterCrop, RandomResizedCrop, Resize
    from .tasks.vision.weights import import_weights
    from .train.callbacks.base import Callback
    from .train.callbacks.checkpoint import Checkpoint
    from .train.callbacks.ema import EMA
    from .train.callbacks.history import HistoryLogger
    from .train.callbacks.monitor import EarlyStopping, SaveBest
    from .train.callbacks.plateau import ReduceLROnPlateau
    from .train.callbacks.progress import ProgressCallback
    from .train.callbacks.recorder import LRRecorder
    from .train.callbacks.tensorboard import TensorBoardLogger
    from .train.learner import Learner, LRFindResult
    from .train.mix import cutmix, mixup
