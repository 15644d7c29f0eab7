"""Joint augmentation of images and masks, on device, from the step's key.

Every example is resampled through one random map of output pixels to
source pixels, applied to its image and its mask alike, so a label always
stays on the pixel it describes:

- zoom ``z`` uniform in ``[1, max_zoom]``: a crop of ``H / z`` x ``W / z``
  source pixels fills the output;
- shift: the crop's top-left corner is uniform in ``[-max_shift, H - H / z
  + max_shift]`` (and likewise across), so it may reach ``max_shift``
  pixels past the border;
- flip (with ``flip``): left and right swapped with probability 1/2.

Output pixel ``(i, j)`` takes source pixel ``(floor(top + (i + 1/2) / z),
floor(left + (j' + 1/2) / z))`` with ``j' = W - 1 - j`` when flipped: nearest-neighbour resampling of both image and mask, so masks
keep integer labels and no image value is a blend that its label does not
describe. Output pixels whose source lies outside the image are 0 in the
image and ``ignore_label`` in the mask (they count in neither loss nor
metrics). ``zoom 1, shift 0, no flip`` is the identity.

Each example's draws come from ``fold_in(key, its index in the global
batch)``, so the augmentation of a batch does not depend on how it is split
over devices.
"""

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from dlcore.config import field


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Training augmentation (evaluation never augments)."""
  flip: bool = field(False, "random left-right flips (off for digits, "
                     "whose mirror images are not digits)")
  max_shift: int = field(0, "random shifts of up to this many pixels",
                         valid="[0, inf)")
  max_zoom: float = field(1.0, "random zoom-in of up to this factor (1: none)",
                          valid="[1, inf)")

  @property
  def active(self) -> bool:
    return self.flip or self.max_shift > 0 or self.max_zoom > 1.0


def augment(key: jax.Array, images: jax.Array, masks: jax.Array,
            config: AugmentConfig, ignore_label: int, *,
            axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """Images ``[B, H, W, C]`` and masks ``[B, H, W]`` moved together; see the module docstring.

  Under ``axis_name`` the batch is this device's slice of the global batch,
  and example ``i`` has global index ``axis_index * B + i``.
  """
  size = images.shape[0]
  first = 0 if axis_name is None else lax.axis_index(axis_name) * size
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
      first + jnp.arange(size))
  return jax.vmap(lambda k, x, y: _one(k, x, y, config, ignore_label))(
      keys, images, masks)


def _one(key, image, mask, config: AugmentConfig, ignore_label: int):
  """One example ``[H, W, C]``, ``[H, W]``."""
  height, width = mask.shape
  zoom_key, top_key, left_key, flip_key = jax.random.split(key, 4)
  zoom = jax.random.uniform(zoom_key, (), minval=1.0, maxval=config.max_zoom)
  shift = config.max_shift

  def sources(key, length):
    start = jax.random.uniform(key, (), minval=-shift,
                               maxval=length - length / zoom + shift)
    return jnp.floor(start + (jnp.arange(length) + 0.5) / zoom).astype(jnp.int32)

  rows, columns = sources(top_key, height), sources(left_key, width)
  if config.flip:
    columns = jnp.where(jax.random.bernoulli(flip_key), columns[::-1],
                        columns)
  inside = (((rows >= 0) & (rows < height))[:, None]
            & ((columns >= 0) & (columns < width))[None, :])
  rows, columns = jnp.clip(rows, 0, height - 1), jnp.clip(columns, 0, width - 1)
  image = jnp.where(inside[..., None], image[rows][:, columns], 0)
  mask = jnp.where(inside, mask[rows][:, columns], ignore_label)
  return image, mask
