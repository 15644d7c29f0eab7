"""Semantic segmentation as an ``Objective``: per-pixel steps and overlaid predictions to look at."""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore.objective import Objective
from dlcore.segmentation.augment import AugmentConfig
from dlcore.segmentation.overlays import overlay_grid
from dlcore.segmentation.steps import eval_step, train_step
from dlcore.state import TrainState, apply_model, create_train_state


def segmentation_objective(model: nn.Module, tx: optax.GradientTransformation,
                           *, class_weights: Sequence[float] | None = None,
                           augment_config: AugmentConfig = AugmentConfig(),
                           frozen: tuple[str, ...] = (),
                           sample_images: Any = None,
                           sample_masks: Any = None) -> Objective:
  """Semantic segmentation by ``model`` (``[B, H, W, C] -> [B, H, W, K]``) as an ``Objective``.

  With ``sample_images`` ``[n, H, W, C]`` and their ``sample_masks``,
  ``sample`` shows them with ground truth and predictions overlaid
  (``overlays.overlay_grid``).
  """
  def init(key: jax.Array, batch: dict[str, Any]) -> TrainState:
    return create_train_state(model, tx, jnp.asarray(batch["image"][:1]), key,
                              frozen=frozen)

  def sample(state: TrainState, key: jax.Array) -> jax.Array:
    del key
    logits, _ = apply_model(state, state.params, jnp.asarray(sample_images),
                       train=False)
    return overlay_grid(sample_images, sample_masks, jnp.argmax(logits, -1),
                        logits.shape[-1])

  options = dict(class_weights=tuple(class_weights) if class_weights else None)
  return Objective(
      init=init,
      train_step=functools.partial(train_step, augment_config=augment_config,
                                   **options),
      eval_step=functools.partial(eval_step, **options),
      sample=None if sample_images is None else sample)
