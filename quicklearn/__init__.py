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

from ._version import __version__
from .errors import ConfigError, DataError, QuicklearnError, TrainingError, WeightsError

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # the three-line API
    "vision_learner": "quicklearn.vision", "tabular_learner": "quicklearn.tabular", "text_learner": "quicklearn.text",
    "load": "quicklearn.export", "text_dataloaders": "quicklearn.text", "TextModel": "quicklearn.models.text",
    "TextPredictor": "quicklearn.text_predictor",
    # data
    "image_dataloaders": "quicklearn.data.block", "DataLoaders": "quicklearn.data.block",
    "AugmentConfig": "quicklearn.data.augment", "Normalize": "quicklearn.data.augment",
    "Resize": "quicklearn.data.transforms", "CenterCrop": "quicklearn.data.transforms",
    "RandomResizedCrop": "quicklearn.data.transforms",
    "RegexLabel": "quicklearn.data.labels", "parent_label": "quicklearn.data.labels", "Vocab": "quicklearn.data.labels",
    "RandomSplitter": "quicklearn.data.split", "StratifiedSplitter": "quicklearn.data.split",
    "FolderSplitter": "quicklearn.data.split", "ColumnSplitter": "quicklearn.data.split", "IndexSplitter": "quicklearn.data.split",
    "TimeSplitter": "quicklearn.data.split",
    "tabular_dataloaders": "quicklearn.tabular", "auto_epochs": "quicklearn.tabular", "ColumnRoles": "quicklearn.data.tabular",
    "TabularProcessor": "quicklearn.data.tabular", "infer_roles": "quicklearn.data.tabular",
    # models
    "DEFAULT_ARCH": "quicklearn.models.backbones", "create_body": "quicklearn.models.backbones",
    "build_model": "quicklearn.models.model", "TransferModel": "quicklearn.models.model",
    "HeadConfig": "quicklearn.models.heads", "import_weights": "quicklearn.models.weights",
    "TabularModel": "quicklearn.models.tabular",
    # training
    "Learner": "quicklearn.train.learner", "LRFindResult": "quicklearn.train.learner",
    "Callback": "quicklearn.train.callbacks", "ProgressCallback": "quicklearn.train.callbacks",
    "HistoryLogger": "quicklearn.train.callbacks", "EarlyStopping": "quicklearn.train.callbacks",
    "SaveBest": "quicklearn.train.callbacks", "Checkpoint": "quicklearn.train.callbacks",
    "TensorBoardLogger": "quicklearn.train.tensorboard", "LRRecorder": "quicklearn.train.recorder",
    "EMA": "quicklearn.train.ema", "ReduceLROnPlateau": "quicklearn.train.plateau",
    "ProgressiveResize": "quicklearn.train.progressive", "mixup": "quicklearn.train.mix", "cutmix": "quicklearn.train.mix",
    # results
    "Predictor": "quicklearn.export", "Prediction": "quicklearn.export", "TabularPredictor": "quicklearn.tabular_predictor",
    "interpret": "quicklearn.interpretation", "Interpretation": "quicklearn.interpretation",
    "fit_thresholds": "quicklearn.thresholds",
    "export_onnx": "quicklearn.onnx_export",
    # process settings
    "tune_cpu_allocator": "quicklearn.runtime",
}

__all__ = [
    "__version__", *_EXPORTS,
    "QuicklearnError", "DataError", "ConfigError", "WeightsError", "TrainingError",
]


# public submodules, also loaded on first use: ql.distributed (rank helpers for torchrun runs)
_SUBMODULES = frozenset({"distributed"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"quicklearn.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quicklearn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute access
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .data.augment import AugmentConfig, Normalize
    from .data.block import DataLoaders, image_dataloaders
    from .data.labels import RegexLabel, Vocab, parent_label
    from .data.split import ColumnSplitter, FolderSplitter, IndexSplitter, RandomSplitter, StratifiedSplitter, TimeSplitter
    from .data.tabular import ColumnRoles, TabularProcessor, infer_roles
    from .data.transforms import CenterCrop, RandomResizedCrop, Resize
    from .export import Prediction, Predictor, load
    from .interpretation import Interpretation, interpret
    from .onnx_export import export_onnx
    from .models.backbones import DEFAULT_ARCH, create_body
    from .models.heads import HeadConfig
    from .models.model import TransferModel, build_model
    from .models.tabular import TabularModel
    from .models.weights import import_weights
    from .runtime import tune_cpu_allocator
    from .tabular import auto_epochs, tabular_dataloaders, tabular_learner
    from .tabular_predictor import TabularPredictor
    from .text import text_dataloaders, text_learner
    from .models.text import TextModel
    from .text_predictor import TextPredictor
    from .thresholds import fit_thresholds
    from .train.callbacks import Callback, Checkpoint, EarlyStopping, HistoryLogger, ProgressCallback, SaveBest
    from .train.ema import EMA
    from .train.learner import Learner, LRFindResult
    from .train.recorder import LRRecorder
    from .train.tensorboard import TensorBoardLogger
    from .train.mix import cutmix, mixup
    from .train.plateau import ReduceLROnPlateau
    from .train.progressive import ProgressiveResize
    from .vision import vision_learner
