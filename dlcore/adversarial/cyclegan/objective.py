"""CycleGAN as an ``Objective``: init (four networks, two pools) and the compiled step."""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.typing import Dtype

from dlcore.adversarial.cyclegan.state import (PAPER_ADAM, CycleGanState,
                                               NetworkSpec,
                                               create_cyclegan_state)
from dlcore.adversarial.cyclegan.steps import cyclegan_step
from dlcore.objective import Objective


def cyclegan_objective(spec: NetworkSpec, image_shape: tuple[int, ...], *,
                       tx: optax.GradientTransformation = PAPER_ADAM,
                       pool_size: int = 50, loss: str = "least-squares",
                       cycle_weight: float = 10.0, identity_weight: float = 0.5,
                       dtype: Dtype = jnp.float32) -> Objective:
  """CycleGAN between two domains of images ``image_shape`` in [-1, 1].

  The train step is ``cyclegan_step`` on batches ``{"image_a", "image_b"}``.
  """
  def init(key: jax.Array, batch: Any) -> CycleGanState:
    del batch  # The shapes come from image_shape.
    return create_cyclegan_state(spec, tuple(image_shape), key, tx=tx,
                                 pool_size=pool_size, dtype=dtype)

  return Objective(init=init, train_step=functools.partial(
      cyclegan_step, loss=loss, cycle_weight=cycle_weight,
      identity_weight=identity_weight))
