"""quicklearn: point it at your data, get a strong fine-tuned model in minutes.

    import quicklearn as ql
    learn = ql.vision_learner("path/to/folder")
    learn.fine_tune(3)
"""

from ._version import __version__
from .data.augment import AugmentConfig, Normalize
from .data.block import DataLoaders, image_dataloaders
from .data.labels import RegexLabel, Vocab, parent_label
from .data.split import ColumnSplitter, FolderSplitter, IndexSplitter, RandomSplitter, StratifiedSplitter
from .data.transforms import CenterCrop, RandomResizedCrop, Resize
from .errors import ConfigError, DataError, QuicklearnError, TrainingError, WeightsError
from .export import Prediction, Predictor, load
from .models.backbones import DEFAULT_ARCH, create_body
from .models.heads import HeadConfig
from .models.model import TransferModel, build_model
from .models.weights import import_weights
from .train.callbacks import Callback, Checkpoint, EarlyStopping, HistoryLogger, ProgressCallback, SaveBest
from .train.learner import Learner, LRFindResult
from .vision import vision_learner

__all__ = [
    "__version__",
    # the three-line API
    "vision_learner", "load",
    # data
    "image_dataloaders", "DataLoaders", "AugmentConfig", "Normalize", "Resize", "CenterCrop", "RandomResizedCrop",
    "RegexLabel", "parent_label", "Vocab",
    "RandomSplitter", "StratifiedSplitter", "FolderSplitter", "ColumnSplitter", "IndexSplitter",
    # models
    "DEFAULT_ARCH", "create_body", "build_model", "TransferModel", "HeadConfig", "import_weights",
    # training
    "Learner", "LRFindResult", "Callback", "ProgressCallback", "HistoryLogger", "EarlyStopping", "SaveBest", "Checkpoint",
    # results
    "Predictor", "Prediction",
    # errors
    "QuicklearnError", "DataError", "ConfigError", "WeightsError", "TrainingError",
]
