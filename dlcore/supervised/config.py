"""Options of the supervised scripts: ``ClassifyConfig`` (``classify.py``) and ``FinetuneConfig``."""

import dataclasses

from dlcore import experiment, optim, transfer
from dlcore.config import field
from dlcore.models import CLASSIFIERS


@dataclasses.dataclass(frozen=True)
class ClassifyConfig(experiment.EpochConfig):
  """Options of ``experiments/classify.py`` (defaults: the digits run)."""
  model: str = field("cnn", "classifier", choices=sorted(CLASSIFIERS))
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=3e-3, schedule="cosine"),
      "the optimizer")
  label_smoothing: float = field(0.0, "label smoothing in the cross-entropy",
                                 valid="[0, 1)")
  shift: int = field(0, "augment training images by random translations of "
                     "up to this many pixels (0: none)", valid="[0, inf)")
  batch_size: int = field(32, "global training batch size (split evenly "
                          "over the devices)", valid="[1, inf)")
  workdir: str = field("runs/classify", "where metrics, plots and "
                       "checkpoints go")
  classes: str = field("", "keep only these classes, relabelled 0..k-1 in "
                       "this order, e.g. 5,6,7,8,9 (default: all)")
  train_per_class: int = field(0, "training images per class, drawn "
                               "reproducibly from the seed (0: all)",
                               valid="[0, inf)")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(ClassifyConfig):
  """Options of ``experiments/finetune.py``: ``classify.py``'s and the transfer's."""
  init_from: str = field("", "the weights to start from: a dlcore workdir, "
                         "an Orbax checkpoint directory or an .npz file "
                         "keyed 'params/Conv_0/kernel' (default: none; "
                         "required)")
  reinit: tuple[str, ...] = field((transfer.HEAD,), "regexes of paths that "
                                  "keep their fresh values (HEAD: the "
                                  "model's classifier head; give none to "
                                  "restore every leaf)")
  remap: tuple[str, ...] = field((), "'OLD=NEW' prefixes renaming the "
                                 "checkpoint's paths before matching")
  freeze: tuple[str, ...] = field((), "regexes of paths to freeze, with "
                                  "their BatchNorm statistics (added to "
                                  "optimizer.freeze)")
  lr_mult: tuple[str, ...] = field((), "learning-rate multipliers "
                                   "'PATTERN=X' (added to optimizer.lr_mult)")
  workdir: str = field("runs/finetune", "where metrics, plots and "
                       "checkpoints go")
