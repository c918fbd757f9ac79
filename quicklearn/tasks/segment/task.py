"""The segmentation task: photos and a mask per photo (a mask folder beside the photo folder, or a CSV of both)
-> a pretrained timm encoder with a U-Net-style decoder (segmentation-models-pytorch), fine-tuned. A photo folder
with a mask folder beside it is also "a folder of images"; this task refines the vision task's data, so it is
chosen when both claim a folder. The heavy modules load only inside the methods that need them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quicklearn.tasks.base import OnnxSpec, Option, Predicted, ServeSpec, Task
from quicklearn.tasks.segment.recipe import SegmentRecipe, learner_kwargs, void_value

if TYPE_CHECKING:
    import torch

    from quicklearn.analysis.interpretation import Interpretation
    from quicklearn.train.callbacks.base import Callback
    from quicklearn.train.learner import Learner

__all__ = ["SegmentTask", "TASK"]


class SegmentTask(Task):
    name = "segment"
    summary = "semantic segmentation: a class for every pixel, a pretrained timm encoder with a U-Net-style decoder"
    recipe = SegmentRecipe
    items = "photos"
    noun = "segmentation"
    detect_order = 5
    refines = ("vision",)
    predict_out_dir = True
    options = (
        # --arch, --weights and --size mean what they mean for images (the same flags and keys as the vision task's)
        Option("--arch", "model.arch", "The architecture: a timm name for images, minilm, a folder or a hub name for texts."),
        Option("--weights", "model.weights", "imagenet | PATH to a weights file | none."),
        Option("--size", "transforms.size", "Image size in pixels.", int),
        Option("--masks", "data.masks", "The mask folder (default: found beside the photos, e.g. train/ + trainannot/)."),
        Option("--codes", "data.codes", "Class names, one per line in mask-value order (default: codes.txt beside the data)."),
        Option("--void", "data.void", "The mask value ignored by the loss and the metrics, or none (default: a class "
               "named void/unlabelled/ignore, or 255 beside other values).", parse=void_value),
        Option("--decoder", "model.decoder", "unet | fpn | deeplabv3plus."),
        Option("--dice", "training.dice", "Add this x the Dice loss to the cross-entropy, e.g. 1.0 (0: off).", float),
    )

    def detect(self, data: Path) -> str | None:
        from quicklearn.tasks.segment.pairs import find_layout, mask_column

        if data.is_dir():
            layout = find_layout(data)
            if layout is None:
                return None
            photos, masks, _ = layout[0]
            return f"photos in {photos.name}/ with masks in {masks.name}/"
        if data.suffix.lower() in (".csv", ".tsv"):
            from quicklearn.data.sources import peek_table

            cols = mask_column(peek_table(data), named_only=True)
            if cols is not None:
                return f"columns {cols[0]!r} and {cols[1]!r} hold photo and mask paths"
        return None

    def check(self, recipe: SegmentRecipe) -> None:  # type: ignore[override]
        """segmentation-models-pytorch is installed, the encoder and decoder exist and the data is there."""
        from quicklearn.core.errors import DataError
        from quicklearn.tasks.segment.model import check_decoder, require_smp
        from quicklearn.tasks.vision.backbones import check_arch

        require_smp()
        check_arch(recipe.model.arch)
        check_decoder(recipe.model.decoder)
        path = Path(str(recipe.data.path)).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or folder. Check the path given as --data / the first argument.")

    def describe(self, recipe: SegmentRecipe, out: Path) -> str:  # type: ignore[override]
        t, m, f = recipe.transforms, recipe.model, recipe.fit
        return (f"training [bold]{m.arch}[/] + {m.decoder} (weights: {m.weights or 'none'}) on {recipe.data.path}, size "
                f"{t.size}, batch size {recipe.training.bs}, {f.freeze_epochs} frozen + {f.epochs} unfrozen epochs, "
                f"device {recipe.training.device} -> {out}")

    def build(self, recipe: SegmentRecipe, *, path: Path | None, progress: bool | None,  # type: ignore[override]
              cbs: Sequence["Callback"]) -> "Learner":
        from quicklearn.tasks.segment.learner import segmentation_learner

        return segmentation_learner(recipe.data.path, path=path, progress=progress, cbs=cbs,  # type: ignore[arg-type]
                                    recipe=recipe.model_dump(mode="json"), **learner_kwargs(recipe))

    def load(self, folder: Path, config: dict, state: dict[str, "torch.Tensor"], device: Any) -> Any:
        from quicklearn.tasks.segment.predictor import load_segmentation_model

        return load_segmentation_model(folder, config, state, device)

    def predict_inputs(self, predictor: Any, inputs: list[str], *, thresh: Any = None, tta: bool = False,
                       out_dir: Path | None = None) -> Predicted:
        from quicklearn.tasks.segment.cli import predict_photos

        return predict_photos(predictor, inputs, thresh=thresh, tta=tta, out_dir=out_dir)

    def evaluate(self, predictor: Any, data: Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
        from quicklearn.tasks.segment.evaluate import evaluate_masks

        return evaluate_masks(predictor, data, y, tta)

    def interpret_learner(self, learn: "Learner") -> "Interpretation":
        from quicklearn.tasks.segment.interpret import interpret_learner

        return interpret_learner(learn)

    def interpret_model(self, predictor: Any, data: Any, y: str | None) -> "Interpretation":
        from quicklearn.tasks.segment.interpret import interpret_model

        return interpret_model(predictor, data, y)

    def data_checks(self, recipe: SegmentRecipe) -> Any:  # type: ignore[override]
        from quicklearn.tasks.segment.checks import segment_checks

        return segment_checks(recipe)

    def serve(self, predictor: Any) -> ServeSpec:
        from quicklearn.tasks.segment.serve import serve_spec

        return serve_spec(predictor)

    def onnx(self, predictor: Any) -> OnnxSpec:
        from quicklearn.tasks.segment.onnx import onnx_spec

        return onnx_spec(predictor)

    def show_batch(self, recipe: SegmentRecipe, out: Path, n: int) -> str:  # type: ignore[override]
        from quicklearn.tasks.segment.data import segmentation_dataloaders

        self.check(recipe)
        kw = learner_kwargs(recipe)
        dls = segmentation_dataloaders(recipe.data.path, masks=kw["masks"], codes=kw["codes"], void=kw["void"],  # type: ignore[arg-type]
                                       splitter=kw["splitter"], valid_pct=kw["valid_pct"], seed=kw["seed"],
                                       size=kw["size"], augment=kw["augment"], arch=kw["arch"], bs=kw["bs"])
        path = dls.show_batch(out, n=min(n, 8))
        return f"{dls.train.n} train / {dls.valid.n} valid photos; classes: {', '.join(dls.table.names)}\nsaved {path}"


TASK = SegmentTask()
