"""Masks drawn over their images in colour, for people to look at.

``overlay_grid(images, true, predicted, K)`` stacks ``n`` images, then the
same images with the ground-truth masks overlaid, then with the predicted
ones: ``[3n, H, W, 3]`` in [0, 1], which ``dlcore.writers.tile`` (10 per
row) lays out as rows of images, truth and predictions when ``n`` is 10.
Class ``k`` is colour ``k`` of matplotlib's ``tab20`` palette (cycled),
blended at ``ALPHA`` over the grey image; pixels with a label outside
``[0, K)`` (ignored) stay uncoloured.
"""

import jax
import jax.numpy as jnp
import matplotlib

ALPHA = 0.6


def palette(num_classes: int) -> jax.Array:
  """``[K, 3]`` RGB colours in [0, 1]."""
  colours = matplotlib.colormaps["tab20"].colors
  return jnp.asarray([colours[k % len(colours)] for k in range(num_classes)],
                     jnp.float32)


def overlay(images: jax.Array, masks: jax.Array, num_classes: int) -> jax.Array:
  """Images ``[n, H, W, C]`` (C 1 or 3) with ``masks`` ``[n, H, W]`` blended in: ``[n, H, W, 3]``."""
  images = jnp.clip(jnp.asarray(images, jnp.float32), 0.0, 1.0)
  rgb = jnp.broadcast_to(images, images.shape[:3] + (3,))
  labelled = ((masks >= 0) & (masks < num_classes))[..., None]
  colours = palette(num_classes)[jnp.clip(masks, 0, num_classes - 1)]
  return jnp.where(labelled, (1 - ALPHA) * rgb + ALPHA * colours, rgb)


def overlay_grid(images: jax.Array, true_masks: jax.Array,
                 predicted_masks: jax.Array, num_classes: int) -> jax.Array:
  """``[3n, H, W, 3]``: the images, then truth overlaid, then predictions overlaid."""
  images = jnp.asarray(images, jnp.float32)
  rgb = jnp.broadcast_to(images, images.shape[:3] + (3,))
  return jnp.concatenate([rgb, overlay(images, true_masks, num_classes),
                          overlay(images, predicted_masks, num_classes)])
