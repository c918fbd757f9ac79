"""The vision task: images (a folder per class, train/ and valid/ folders, or a CSV of image paths) -> a
pretrained timm backbone with a new head, fine-tuned. Everything the rest of quicklearn asks of images is here;
the heavy modules (torch, timm) load only inside the methods that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quicklearn.tasks.base import OnnxSpec, Option, Predicted, ServeSpec, Task
from quicklearn.tasks.vision.recipe import VisionRecipe, learner_kwargs

if TYPE_CHECKING:
    import torch

    from quicklearn.analysis.interpretation import Interpretation
    from quicklearn.train.callbacks.base import Callback
    from quicklearn.train.learner import Learner

__all__ = ["VisionTask", "TASK"]


class VisionTask(Task):
    name = "vision"
    summary = "image classification, multi-label and regression: a pretrained timm backbone, fine-tuned"
    recipe = VisionRecipe
    items = "images"
    noun = "images"
    detect_order = 10
    options = (
        Option("--arch", "model.arch", "The architecture: a timm name for images, minilm, a folder or a hub name for texts."),
        Option("--weights", "model.weights", "imagenet | PATH to a weights file | none."),
        Option("--size", "transforms.size", "Image size in pixels.", int),
        Option("--mixup", "training.mixup", "Mixup's Beta alpha, e.g. 0.4 (0: off).", float),
        Option("--cutmix", "training.cutmix", "CutMix's Beta alpha, e.g. 1.0 (0: off).", float),
        Option("--ema", "training.ema", "Keep an EMA of the weights with this decay, e.g. 0.998 (off when left out).", float),
        Option("--progressive", "training.progressive", "Train at this fraction of --size first, e.g. 0.5 (off when left out).", float),
    )

    def detect(self, data: Path) -> str | None:
        if data.is_dir():
            return "a folder of images"
        from quicklearn.data.sources import peek_table
        from quicklearn.tasks.vision.sources import find_image_column

        if data.suffix.lower() in (".csv", ".tsv", ".txt") and (col := find_image_column(peek_table(data))):
            return f"column {col!r} holds image paths"
        return None

    def default_data(self) -> str | None:
        from importlib.resources import files

        return str(Path(str(files("quicklearn_examples") / "hymenoptera")))

    def check(self, recipe: VisionRecipe) -> None:  # type: ignore[override]
        """The architecture exists and the data is there (a CSV's label column too), before anything is announced."""
        from quicklearn.core.errors import DataError
        from quicklearn.tasks.vision.backbones import check_arch

        check_arch(recipe.model.arch)  # a typo fails before anything is announced
        path = Path(str(recipe.data.path)).expanduser()
        if not path.exists():
            what = "file" if path.suffix.lower() in (".csv", ".tsv", ".txt") else "folder"
            raise DataError(f"{path}: no such {what}. Check the path given as --data / the first argument.")
        y = recipe.data.y
        if path.is_file() and isinstance(y, str) and "(" not in y:  # a column of a CSV (a regex holds a group)
            from quicklearn.data.frames import check_columns, read_head

            check_columns(*read_head(path), target=y)

    def describe(self, recipe: VisionRecipe, out: Path) -> str:  # type: ignore[override]
        t, m, f = recipe.transforms, recipe.model, recipe.fit
        return (f"training [bold]{m.arch}[/] (weights: {m.weights or 'none'}) on {recipe.data.path} at {t.size}px, "
                f"batch size {recipe.training.bs}, {f.freeze_epochs} frozen + {f.epochs} unfrozen epochs, "
                f"device {recipe.training.device} -> {out}")

    def build(self, recipe: VisionRecipe, *, path: Path | None, progress: bool | None,  # type: ignore[override]
              cbs: Sequence["Callback"]) -> "Learner":
        from quicklearn.tasks.vision.learner import vision_learner

        return vision_learner(recipe.data.path, path=path, progress=progress, cbs=cbs,
                              recipe=recipe.model_dump(mode="json"), **learner_kwargs(recipe))

    def load(self, folder: Path, config: dict, state: dict[str, "torch.Tensor"], device: Any) -> Any:
        from quicklearn.tasks.vision.predictor import load_image_model

        return load_image_model(folder, config, state, device)

    def predict_inputs(self, predictor: Any, inputs: list[str], *, thresh: Any = None, tta: bool = False) -> Predicted:
        from quicklearn.tasks.vision.cli import predict_images

        return predict_images(predictor, inputs, thresh=thresh, tta=tta)

    def evaluate(self, predictor: Any, data: Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
        from quicklearn.tasks.vision.evaluate import evaluate_images

        return evaluate_images(predictor, data, y, tta)

    def interpret_learner(self, learn: "Learner") -> "Interpretation":
        from quicklearn.tasks.vision.interpret import interpret_learner

        return interpret_learner(learn)

    def interpret_model(self, predictor: Any, data: Any, y: str | None) -> "Interpretation":
        from quicklearn.tasks.vision.interpret import interpret_model

        return interpret_model(predictor, data, y)

    def onnx(self, predictor: Any) -> OnnxSpec:
        from quicklearn.tasks.vision.onnx import onnx_spec

        return onnx_spec(predictor)

    def serve(self, predictor: Any) -> ServeSpec:
        from quicklearn.tasks.vision.serve import serve_spec

        return serve_spec(predictor)

    def show_batch(self, recipe: VisionRecipe, out: Path, n: int) -> str:  # type: ignore[override]
        from quicklearn.tasks.vision.data import image_dataloaders

        dls = image_dataloaders(recipe.data.path, size=recipe.transforms.size)
        path = dls.show_batch(out, n=n)
        classes = ", ".join(dls.vocab.classes) if dls.vocab else dls.kind
        return f"{dls.train.n} train / {dls.valid.n} valid images; classes: {classes}\nsaved {path}"

    def data_checks(self, recipe: VisionRecipe) -> Any:  # type: ignore[override]
        from quicklearn.tasks.vision.checks import vision_checks

        return vision_checks(recipe)

    def commands(self) -> list[Any]:
        from quicklearn.tasks.vision.cli import weights_app

        return [weights_app()]

    def info(self) -> list[tuple[str, str]]:
        from quicklearn.tasks.vision.weights import bundled_status, list_cached

        rows = [(f"offline weights {arch}", "installed" if ok else "not installed") for arch, ok in bundled_status().items()]
        rows.append(("cached weights", ", ".join(str(c.get("arch")) for c in list_cached()) or "none"))
        return rows


TASK = VisionTask()
