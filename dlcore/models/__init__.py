"""Pure Flax linen models, and the registry the scripts choose from by name.

Every classifier is called as ``model.apply(variables, x, train=...)`` with
``x`` of shape ``[B, H, W, C]`` (images) and returns float32 logits
``[B, classes]``. Models with BatchNorm also take ``axis_name`` for
synchronised statistics. Every model computes in its ``dtype`` (float32 by
default; bfloat16 for mixed precision) with ``param_dtype`` (float32)
parameters.
"""

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from dlcore.models.convnets import CNN, LeNet5
from dlcore.models.mlp import MLP
from dlcore.models.recurrent import RecurrentClassifier
from dlcore.models.resnet import (ImageNetResNet, ImageNetResNet18,
                                  ImageNetResNet50, ResNet, ResNet18, ResNet20)
from dlcore.models.segmentation import (FCN, SEGMENTERS, UNet,
                                        create_segmenter)
from dlcore.models.transformer import TransformerClassifier

# Each is called as ``CLASSIFIERS[name](num_classes=..., dtype=...)``.
CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": lambda num_classes, dtype: MLP(num_outputs=num_classes, dtype=dtype),
    "lenet5": LeNet5,
    "cnn": CNN,
    "resnet20": ResNet20,
    "resnet18": ResNet18,
    "resnet18_imagenet": ImageNetResNet18,
    "resnet50_imagenet": ImageNetResNet50,
    "rnn": functools.partial(RecurrentClassifier, cell="rnn"),
    "lstm": functools.partial(RecurrentClassifier, cell="lstm"),
    "gru": functools.partial(RecurrentClassifier, cell="gru"),
    "transformer": TransformerClassifier,
}


def create_classifier(name: str, num_classes: int,
                      dtype: Dtype = jnp.float32) -> nn.Module:
  """The classifier registered as ``name`` with ``num_classes`` outputs.

  It computes in ``dtype`` with float32 parameters.
  """
  if name not in CLASSIFIERS:
    raise ValueError(f"unknown classifier {name!r}; the registered ones are "
                     f"{', '.join(sorted(CLASSIFIERS))}")
  return CLASSIFIERS[name](num_classes=num_classes, dtype=dtype)


def takes_images(model: nn.Module, image_shape: Sequence[int]) -> bool:
  """Whether ``model`` initialises on one image of ``image_shape`` (traced, not run)."""
  try:
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False),
                   jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))
  except (TypeError, ValueError, ArithmeticError):  # Shapes that do not fit.
    return False
  return True


def smallest_square_side(model: nn.Module, channels: int,
                         start: int = 1) -> int | None:
  """The side of the smallest square image above ``start`` that ``model`` takes (None up to 1024)."""
  return next((s for s in range(start + 1, 1025)
               if takes_images(model, (s, s, channels))), None)


__all__ = ["CLASSIFIERS", "CNN", "FCN", "ImageNetResNet", "ImageNetResNet18",
           "ImageNetResNet50", "LeNet5", "MLP", "RecurrentClassifier",
           "ResNet", "ResNet18", "ResNet20", "SEGMENTERS",
           "TransformerClassifier", "UNet", "create_classifier",
           "create_segmenter", "smallest_square_side", "takes_images"]
