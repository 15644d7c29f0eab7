"""Fine-tuning a classifier from another run's weights: ``finetune(config, workdir)``.

Everything ``train_and_evaluate`` does and writes (``classes`` and
``train_per_class`` carve the target task), starting from the weights in
``init_from`` (``dlcore.transfer``) with the ``reinit`` leaves (default: the
head) fresh, the ``freeze`` leaves and their BatchNorm statistics fixed
(those layers run in inference mode), and ``lr_mult`` learning-rate
multipliers. ``freeze`` and ``lr_mult`` join ``optimizer.freeze`` and
``optimizer.lr_mult``; the run records them there. A resumed run continues
from its own checkpoint.
"""

import dataclasses
import pathlib
from typing import Any

from dlcore import transfer
from dlcore.config import field
from dlcore.errors import ConfigError
from dlcore.supervised.train import ClassifyConfig, train_and_evaluate


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(ClassifyConfig):
  """Options of ``experiments/finetune.py``: ``classify.py``'s and the transfer's."""
  init_from: str = field("", "the weights to start from: a dlcore workdir, "
                         "an Orbax checkpoint directory or an .npz file "
                         "keyed 'params/Conv_0/kernel' (default: none; "
                         "required)")
  reinit: tuple[str, ...] = field((transfer.HEAD,), "regexes of paths that "
                                  "keep their fresh values (HEAD: the "
                                  "model's last module; give none to "
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


def finetune(config: FinetuneConfig,
             workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Fine-tunes from ``config.init_from``; returns the summary (as ``train_and_evaluate``)."""
  if not config.init_from:
    raise ConfigError("option init_from is required: a dlcore workdir, an "
                      "Orbax checkpoint directory or an .npz parameter file")
  optimizer = dataclasses.replace(
      config.optimizer, freeze=config.optimizer.freeze + config.freeze,
      lr_mult=config.optimizer.lr_mult + config.lr_mult)
  config = dataclasses.replace(config, optimizer=optimizer, freeze=(),
                               lr_mult=())
  loaded = transfer.load_variables(config.init_from)
  return train_and_evaluate(config, workdir, init_variables=transfer.warm_start(
      loaded, reinit=config.reinit, remap=config.remap,
      source=f"option init_from {config.init_from!r}"))
