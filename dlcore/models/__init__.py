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

from dlcore.errors import ConfigError
from dlcore.models.convnets import CNN, LeNet5
from dlcore.models.mlp import MLP
from dlcore.models.recurrent import RecurrentClassifier
from dlcore.models.resnet import ResNet, ResNet18, ResNet20
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


def _takes(model: nn.Module, image_shape: Sequence[int]) -> bool:
  """Whether ``model`` initialises on one image of ``image_shape`` (traced, not run)."""
  try:
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False),
                   jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))
  except (TypeError, ValueError, ArithmeticError):  # Shapes that do not fit.
    return False
  return True


def check_image_shape(name: str, image_shape: Sequence[int],
                      who: str | None = None) -> None:
  """Raises ``ConfigError`` when classifier ``name`` cannot take ``[H, W, C]`` images.

  The sentence names the smallest square image the model takes (found by
  ``jax.eval_shape`` of its initialisation, so nothing is computed);
  ``who`` names the model in it instead of ``model NAME`` (the option a
  user can change).
  """
  model = create_classifier(name, num_classes=2)
  height, width, channels = image_shape
  if _takes(model, image_shape):
    return
  side = next((s for s in range(max(height, width) + 1, 1025)
               if _takes(model, (s, s, channels))), None)
  needs = f"at least {side}x{side} pixels" if side else "larger images"
  advice = ("" if who else "; choose larger images or another option model, "
            "such as mlp")
  raise ConfigError(f"{who or f'model {name}'} cannot take images of "
                    f"{height}x{width} pixels; it needs {needs}{advice}")


__all__ = ["CLASSIFIERS", "CNN", "LeNet5", "MLP", "RecurrentClassifier",
           "ResNet", "ResNet18", "ResNet20", "TransformerClassifier",
           "check_image_shape", "check_model_name", "create_classifier"]
