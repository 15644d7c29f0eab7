"""Supervised learning as an ``Objective``: a model, its optimizer and the loss."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore.objective import Objective
from dlcore.state import TrainState, create_train_state
from dlcore.supervised.steps import eval_step, train_step


def classifier_objective(model: nn.Module, tx: optax.GradientTransformation,
                         *, task: str = "classification",
                         label_smoothing: float = 0.0, shift: int = 0,
                         frozen: tuple[str, ...] = ()) -> Objective:
  """Supervised learning of ``model`` (``[B, ...] -> [B, K]``) as an ``Objective``.

  ``init(key, batch)`` builds a ``TrainState`` on one example of
  ``batch["image"]``; ``frozen`` are the path patterns whose parameters and
  BatchNorm statistics stay fixed (``dlcore.optim``).
  """
  def init(key: jax.Array, batch: dict[str, Any]) -> TrainState:
    return create_train_state(model, tx, jnp.asarray(batch["image"][:1]), key,
                              frozen=frozen)
  return Objective(
      init=init,
      train_step=functools.partial(train_step, task=task,
                                   label_smoothing=label_smoothing,
                                   shift=shift),
      eval_step=functools.partial(eval_step, task=task))
