"""The public surface: every name in __all__ resolves, and nothing else is advertised."""

import subprocess
import sys

import quicklearn as ql


def test_every_public_name_resolves_to_the_object_its_module_defines():
    import importlib

    for name, module in ql._EXPORTS.items():
        value = getattr(ql, name)
        assert value is getattr(importlib.import_module(module), name), name  # the lazy import gives the real one
        if callable(value) and hasattr(value, "__module__"):
            assert value.__module__.startswith("quicklearn"), (name, value.__module__)  # ours, not a re-export
    for name in ql.__all__:
        assert name in ql._EXPORTS or name in vars(ql), name  # every advertised name is there


def test_public_surface_is_stable():
    expected = {
        "__version__", "vision_learner", "load", "image_dataloaders", "DataLoaders", "AugmentConfig", "Normalize",
        "Resize", "CenterCrop", "RandomResizedCrop", "RegexLabel", "parent_label", "Vocab", "RandomSplitter",
        "StratifiedSplitter", "FolderSplitter", "ColumnSplitter", "IndexSplitter", "DEFAULT_ARCH", "create_body",
        "build_model", "TransferModel", "HeadConfig", "import_weights", "Learner", "LRFindResult", "Callback",
        "ProgressCallback", "HistoryLogger", "EarlyStopping", "SaveBest", "Checkpoint", "Predictor", "Prediction",
        "QuicklearnError", "DataError", "ConfigError", "WeightsError", "TrainingError",
        # tables (issue 7) and process settings (issue 6)
        "tabular_learner", "tabular_dataloaders", "TimeSplitter", "ColumnRoles", "TabularProcessor", "infer_roles",
        "TabularModel", "TabularPredictor", "tune_cpu_allocator", "auto_epochs",
        # texts (issue 8)
        "text_learner", "text_dataloaders", "TextModel", "TextPredictor",
        # logging (issue 9)
        "TensorBoardLogger", "LRRecorder",
        # stronger training (issue 9)
        "EMA", "ReduceLROnPlateau", "ProgressiveResize", "mixup", "cutmix",
        # interpretation (issue 9)
        "interpret", "Interpretation",
        # multi-label thresholds (issue 9)
        "fit_thresholds",
        # export for serving (issue 9)
        "export_onnx",
        # the task interface and its registry (issue 17)
        "Task", "get_task", "register_task",
        # segmentation (issue 21)
        "segmentation_learner", "segmentation_dataloaders",
        # collaborative filtering (issue 20)
        "collab_learner",
        # what is wrong with a data set (issue 23)
        "check",
    }
    assert set(ql.__all__) == expected


def test_import_and_cli_help_do_not_load_torch():
    code = "import sys, quicklearn, quicklearn_cli.app; print('torch' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
