"""Pure Flax linen models, and the registry the scripts choose from by name.

Every classifier is called as ``model.apply(variables, x, train=...)`` with
``x`` of shape ``[B, H, W, C]`` (images) and returns float32 logits
``[B, classes]``. Models with BatchNorm also take ``axis_name`` for
synchronised statistics. Every model computes in its ``dtype`` (float32 by
default; bfloat16 for mixed precision) with ``param_dtype`` (float32)
parameters.
"""

import functools
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
from flax.typing import Dtype

from dlcore.errors import ConfigError
from dlcore.models.convnets import CNN, LeNet5
from dlcore.models.mlp import MLP
from dlcore.models.recurrent import RecurrentClassifier
from dlcore.models.resnet import ResNet, ResNet18, ResNet20
from dlcore.models.segmentation import (FCN, SEGMENTERS, UNet,
                                        check_image_size, create_segmenter)
from dlcore.models.transformer import TransformerClassifier

# Each is called as ``CLASSIFIERS[name](num_classes=..., dtype=...)``.
CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": lambda num_classes, dtype: MLP(num_outputs=num_classes, dtype=dtype),
    "lenet5": LeNet5,
    "cnn": CNN,
    "resnet20": ResNet20,
    "resnet18": ResNet18,
    "rnn": functools.partial(RecurrentClassifier, cell="rnn"),
    "lstm": functools.partial(RecurrentClassifier, cell="lstm"),
    "gru": functools.partial(RecurrentClassifier, cell="gru"),
    "transformer": TransformerClassifier,
}


def check_model_name(name: str) -> None:
  if name not in CLASSIFIERS:
    raise ConfigError(f"unknown model {name!r}; choose one of "
                      f"{', '.join(sorted(CLASSIFIERS))}")


def create_classifier(name: str, num_classes: int,
                      dtype: Dtype = jnp.float32) -> nn.Module:
  """The classifier registered as ``name`` with ``num_classes`` outputs.

  It computes in ``dtype`` with float32 parameters.
  """
  check_model_name(name)
  return CLASSIFIERS[name](num_classes=num_classes, dtype=dtype)


__all__ = ["CLASSIFIERS", "CNN", "FCN", "LeNet5", "MLP", "RecurrentClassifier",
           "ResNet", "ResNet18", "ResNet20", "SEGMENTERS",
           "TransformerClassifier", "UNet", "check_image_size",
           "check_model_name", "create_classifier", "create_segmenter"]
