"""CycleGAN as an ``Objective``: init (four networks, two pools), the compiled step, translations to look at."""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.typing import Dtype

from dlcore.cyclegan.state import (PAPER_ADAM, CycleGanState, NetworkSpec,
                                   create_cyclegan_state, translate_ab,
                                   translate_ba)
from dlcore.cyclegan.steps import cyclegan_step
from dlcore.objective import Objective


def translation_rows(state: CycleGanState, images_a: jax.Array,
                     images_b: jax.Array) -> jax.Array:
  """``[6 n, H, W, C]`` in [0, 1]: rows a, G(a), F(G(a)), b, F(b), G(F(b)) of ``n`` images each.

  The inputs are ``[n, H, W, C]`` in [0, 1].
  """
  to_net, to_image = (lambda x: x * 2.0 - 1.0), (lambda x: (x + 1.0) / 2.0)
  fake_b = translate_ab(state, to_net(images_a))
  fake_a = translate_ba(state, to_net(images_b))
  return to_image(jnp.concatenate([
      to_net(images_a), fake_b, translate_ba(state, fake_b),
      to_net(images_b), fake_a, translate_ab(state, fake_a)]))


def cyclegan_objective(spec: NetworkSpec, image_shape: tuple[int, ...], *,
                       tx: optax.GradientTransformation = PAPER_ADAM,
                       pool_size: int = 50, loss: str = "least-squares",
                       cycle_weight: float = 10.0, identity_weight: float = 0.5,
                       dtype: Dtype = jnp.float32,
                       sample_a: np.ndarray | None = None,
                       sample_b: np.ndarray | None = None) -> Objective:
  """CycleGAN between two domains of images ``image_shape`` in [-1, 1].

  The train step is ``cyclegan_step`` on batches ``{"image_a", "image_b"}``;
  with ``sample_a`` and ``sample_b`` (``[n, H, W, C]`` in [0, 1]), ``sample``
  shows their ``translation_rows``.
  """
  def init(key: jax.Array, batch: Any) -> CycleGanState:
    del batch  # The shapes come from image_shape.
    return create_cyclegan_state(spec, tuple(image_shape), key, tx=tx,
                                 pool_size=pool_size, dtype=dtype)

  def sample(state: CycleGanState, key: jax.Array) -> jax.Array:
    del key  # Translation is deterministic.
    return translation_rows(state, jnp.asarray(sample_a), jnp.asarray(sample_b))

  return Objective(
      init=init,
      train_step=functools.partial(cyclegan_step, loss=loss,
                                   cycle_weight=cycle_weight,
                                   identity_weight=identity_weight),
      sample=None if sample_a is None else sample)
