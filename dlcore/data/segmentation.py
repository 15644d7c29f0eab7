"""Loading a semantic-segmentation dataset into memory, by name or from a file.

Usage::

  data = load_segmentation_dataset("digit_canvases")   # embedded, prepared on first use
  data = load_segmentation_dataset("oxford_iiit_pet", data_dir)  # TFDS, image + segmentation_mask
  data = load_segmentation_dataset("path/to/file.npz")  # x_train, y_train, x_test, y_test

The result is a ``dlcore.data.Dataset`` whose splits' ``labels`` are masks:
images float32 ``[N, H, W, C]`` in [0, 1] (uint8 divided by 255), masks
int32 ``[N, H, W]`` of class indices in ``[0, num_classes)`` or
``IGNORE_LABEL`` (pixels that count in neither loss nor metrics). A TFDS
dataset qualifies when it has ``image`` and ``segmentation_mask`` features
(a trailing mask channel of 1 is dropped). With ``image_size`` every
image is resized to ``image_size`` x ``image_size`` bilinearly and every
mask nearest-neighbour (labels stay labels), which datasets of images of
many sizes, such as ``oxford_iiit_pet``, need. ``num_classes`` is one more than the largest label in the training masks
(the ignore label aside); the embedded ``digit_canvases`` has 11.
"""

import os
import pathlib

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from dlcore.data.canvases import DigitCanvases
from dlcore.data.datasets import (DEFAULT_DATA_DIR, NPZ_KEYS, Dataset, Split,
                                  _as_images, check_data_dir, prepare_quietly)
from dlcore.errors import ConfigError

IGNORE_LABEL = 255
EMBEDDED = "digit_canvases"


def load_segmentation_dataset(name: str, data_dir: str | None = None,
                              image_size: int | None = None) -> Dataset:
  """The segmentation dataset ``name``: ``digit_canvases``, a TFDS name or an ``.npz`` path."""
  if name.endswith(".npz"):
    path = pathlib.Path(name)
    if not path.is_file():
      raise ConfigError(f"dataset file {name!r} does not exist")
    with np.load(path) as npz:
      missing = [k for k in NPZ_KEYS if k not in npz.files]
      if missing:
        raise ConfigError(
            f"{path.name} lacks {', '.join(missing)}; an npz segmentation "
            f"dataset needs the arrays {', '.join(NPZ_KEYS)} (y_* integer "
            "masks [N, H, W])")
      arrays = {k: npz[k] for k in NPZ_KEYS}
    if image_size:
      check_resize_memory(sum(len(arrays[k]) for k in ("x_train", "x_test")),
                          image_size, arrays["x_train"])
      arrays = {k: _resized(list(v), image_size, k.startswith("y"))
                for k, v in arrays.items()}
    return _dataset(path.stem, arrays)
  return _dataset(name, _from_tfds(name, data_dir or DEFAULT_DATA_DIR,
                                   image_size))


def check_resize_memory(count: int, size: int, like: np.ndarray) -> None:
  """``ConfigError`` unless ``count`` images resized to ``size`` x ``size`` fit in memory.

  They become float32 (images, ``C`` channels) and int32 (masks): ``count
  * size^2 * (4 C + 4)`` bytes, which must stay below half the machine's
  physical memory.
  """
  channels = like.shape[3] if like.ndim == 4 else 1
  needed = count * size * size * 4 * (channels + 1)
  total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  if needed > total / 2:
    raise ConfigError(
        f"resizing {count} images and masks to {size}x{size} needs "
        f"{needed / 2**30:.1f} GiB, more than half of this machine's "
        f"{total / 2**30:.1f} GiB; choose a smaller option image_size")


def _resized(arrays: list[np.ndarray], size: int, is_mask: bool) -> np.ndarray:
  """``[N, size, size, ...]``: images bilinearly, masks nearest-neighbour (PIL).

  PIL resizes planes of 8-bit, 32-bit integer or 32-bit float pixels, so
  masks of any integer type travel as int32 and images of any other type
  as float32 (uint8 stays uint8).
  """
  method = PIL.Image.NEAREST if is_mask else PIL.Image.BILINEAR
  out = []
  for a in arrays:
    a = np.asarray(a)
    if is_mask:
      a = a.astype(np.int32)
    elif a.dtype != np.uint8:
      a = a.astype(np.float32)
    channels = a.shape[2:]
    a = a.reshape(a.shape[:2] + (-1,))
    planes = [np.asarray(PIL.Image.fromarray(a[..., c]).resize((size, size),
                                                              method))
              for c in range(a.shape[-1])]
    out.append(np.stack(planes, -1).reshape((size, size) + channels))
  return np.stack(out)


def _from_tfds(name: str, data_dir: str,
               image_size: int | None) -> dict[str, np.ndarray]:
  check_data_dir(data_dir)
  if name == EMBEDDED:
    builder = DigitCanvases(data_dir=data_dir, file_format="array_record")
  else:
    try:
      builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
      raise ConfigError(
          f"unknown dataset {name!r}; choose {EMBEDDED} (embedded), a TFDS "
          "dataset with image and segmentation_mask features such as "
          "oxford_iiit_pet, or a path to an .npz file") from None
  features = builder.info.features
  if "image" not in features or "segmentation_mask" not in features:
    raise ConfigError(f"TFDS dataset {name!r} has no image and "
                      "segmentation_mask features; choose a segmentation "
                      "dataset")
  arrays = {}
  for part in ("train", "test"):
    try:
      if name == EMBEDDED:
        prepare_quietly(builder)
        source = builder.as_data_source(part)
      else:
        source = tfds.data_source(name, split=part, data_dir=data_dir)
    except Exception as e:  # Downloads, missing files, unprepared data.
      first_line = str(e).splitlines()[0] if str(e) else ""
      raise ConfigError(
          f"could not load TFDS dataset {name!r} from {data_dir!r} "
          f"({type(e).__name__}: {first_line}); prepare it there first "
          "with network access") from None
    examples = [source[i] for i in range(len(source))]
    for key, feature in ((f"x_{part}", "image"),
                         (f"y_{part}", "segmentation_mask")):
      values = [ex[feature] for ex in examples]
      if image_size:
        check_resize_memory(len(values), image_size, values[0][None])
        arrays[key] = _resized(values, image_size, feature != "image")
      elif len({v.shape for v in values}) > 1:
        raise ConfigError(
            f"TFDS dataset {name!r} has {feature}s of different sizes; "
            "resize them to one with option image_size")
      else:
        arrays[key] = np.stack(values)
  return arrays


def _dataset(name: str, arrays: dict[str, np.ndarray]) -> Dataset:
  """Checks images against masks and labels against the classes; see the module docstring."""
  splits, num_classes = {}, None
  for part in ("train", "test"):
    images = _as_images(arrays[f"x_{part}"], f"{name}: x_{part}")
    masks = arrays[f"y_{part}"]
    if masks.ndim == 4 and masks.shape[-1] == 1:
      masks = masks[..., 0]
    if masks.shape != images.shape[:3]:
      raise ConfigError(
          f"{name}: y_{part} masks have shape {list(masks.shape)} but the "
          f"images {list(images.shape)}; masks must be [N, H, W] matching "
          "the images")
    if not np.issubdtype(masks.dtype, np.integer):
      raise ConfigError(f"{name}: y_{part} masks must hold integer class "
                        f"labels, got {masks.dtype}")
    masks = masks.astype(np.int64)
    labelled = masks[masks != IGNORE_LABEL]
    if labelled.size == 0:
      raise ConfigError(
          f"{name}: every pixel of y_{part} is the ignore label "
          f"{IGNORE_LABEL}, so there is nothing to "
          f"{'learn' if part == 'train' else 'measure'}; label some pixels "
          f"0 to (number of classes - 1)")
    finite = np.isfinite(images).reshape(len(images), -1).all(-1)
    if not finite.all():
      raise ConfigError(
          f"{name}: x_{part} has NaN or infinite pixels in "
          f"{np.sum(~finite)} images, the first at index "
          f"{int(np.argmin(finite))}; images must be finite")
    if num_classes is None:
      num_classes = int(labelled.max(initial=0)) + 1
      present = len(np.unique(labelled))
      if 2 * present < num_classes:
        raise ConfigError(
            f"{name}: y_train holds labels up to {num_classes - 1}, so "
            f"{num_classes} classes, but only {present} of them occur; "
            f"labels must be class indices 0 to (number of classes - 1), "
            f"{IGNORE_LABEL} for pixels to ignore")
    bad = (labelled < 0) | (labelled >= num_classes)
    if bad.any():
      raise ConfigError(
          f"{name}: y_{part} holds label {labelled[bad][0]} outside [0, "
          f"{num_classes}) (the classes of y_train) that is not the ignore "
          f"label {IGNORE_LABEL}")
    splits[part] = Split(images, masks.astype(np.int32))
  if splits["train"].images.shape[1:] != splits["test"].images.shape[1:]:
    raise ConfigError(f"{name}: train and test images differ in shape")
  return Dataset(name, splits["train"], splits["test"], num_classes)
