"""Loading an image-classification dataset into memory, by name or from a file.

Usage::

  data = load_dataset("digits")            # embedded, prepared on first use
  data = load_dataset("digits32_photo")    # embedded CycleGAN domain (B)
  data = load_dataset("mnist", data_dir)   # any TFDS image/label dataset
  data = load_dataset("path/to/file.npz")  # x_train, y_train, x_test, y_test

Images come back as float32 ``[N, H, W, C]`` in [0, 1] (uint8 is divided by
255; float images are kept as they are), labels as int32 ``[N]``. Reading
TFDS data uses its array_record data sources, so TensorFlow is not needed.
"""

import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from dlcore.data.digit_domains import DOMAIN_BUILDERS
from dlcore.data.digits import Digits
from dlcore.errors import ConfigError

DEFAULT_DATA_DIR = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Prepared offline from what scikit-learn ships; see their modules.
EMBEDDED = {"digits": Digits, **DOMAIN_BUILDERS}


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # [N, H, W, C] float32
  labels: np.ndarray  # [N] int32

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str
  train: Split
  test: Split
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, ...]:
    return self.train.images.shape[1:]


def load_dataset(name: str, data_dir: str | None = None, *,
                 labels_required: bool = True) -> Dataset:
  """The dataset called ``name``: ``digits``, a TFDS name, or an ``.npz`` path.

  With ``labels_required=False`` an ``.npz`` file may hold only ``x_train``
  and ``x_test``; it then comes back with ``num_classes == 0`` and zero
  labels (enough for an unconditional GAN or a VAE).
  """
  if name.endswith(".npz"):
    return _from_npz(pathlib.Path(name), labels_required)
  return _from_tfds(name, data_dir or DEFAULT_DATA_DIR)


def _as_images(x: np.ndarray, what: str) -> np.ndarray:
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise ConfigError(f"{what} must have shape [N, H, W] or [N, H, W, C], "
                      f"got {list(x.shape)}")
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  if not np.issubdtype(x.dtype, np.floating):
    raise ConfigError(f"{what} must be uint8 or float, got {x.dtype}")
  return x.astype(np.float32)


def _as_labels(y: np.ndarray, what: str, num_classes: int | None) -> np.ndarray:
  if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)
                         or np.all(np.mod(y, 1) == 0)):
    raise ConfigError(f"{what} must be a 1-D array of integer class labels")
  y = y.astype(np.int64)
  upper = num_classes if num_classes is not None else np.inf
  bad = (y < 0) | (y >= upper)
  if bad.any():
    raise ConfigError(
        f"{what} holds label {y[bad][0]} outside [0, {num_classes or 'num_classes'}); "
        "labels must be class indices")
  return y.astype(np.int32)


def _from_npz(path: pathlib.Path, labels_required: bool = True) -> Dataset:
  if not path.is_file():
    raise ConfigError(f"dataset file {str(path)!r} does not exist")
  with np.load(path) as npz:
    unlabelled = (not labels_required
                  and not {"y_train", "y_test"} & set(npz.files))
    keys = ("x_train", "x_test") if unlabelled else NPZ_KEYS
    missing = [k for k in keys if k not in npz.files]
    if missing:
      raise ConfigError(
          f"{path.name} lacks {', '.join(missing)}; an npz dataset needs the "
          f"arrays {', '.join(keys)}")
    arrays = {k: npz[k] for k in keys}
  if unlabelled:
    for part in ("train", "test"):
      arrays[f"y_{part}"] = np.zeros(len(arrays[f"x_{part}"]), np.int64)
  for part in ("train", "test"):
    nx, ny = len(arrays[f"x_{part}"]), len(arrays[f"y_{part}"])
    if nx != ny:
      raise ConfigError(f"{path.name}: x_{part} has {nx} images but y_{part} "
                        f"has {ny} labels; they must match")
  y_train = _as_labels(arrays["y_train"], f"{path.name}: y_train", None)
  num_classes = 0 if unlabelled else int(y_train.max()) + 1
  splits = {}
  for part in ("train", "test"):
    splits[part] = Split(
        _as_images(arrays[f"x_{part}"], f"{path.name}: x_{part}"),
        _as_labels(arrays[f"y_{part}"], f"{path.name}: y_{part}",
                   num_classes or None))
  if splits["train"].images.shape[1:] != splits["test"].images.shape[1:]:
    raise ConfigError(f"{path.name}: train and test images differ in shape")
  return Dataset(path.stem, splits["train"], splits["test"], num_classes)


def _builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  if name in EMBEDDED:
    return EMBEDDED[name](data_dir=data_dir, file_format="array_record")
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise ConfigError(
        f"unknown dataset {name!r}; choose digits (embedded), a TFDS image "
        "classification dataset such as mnist, fashion_mnist or cifar10, or "
        "a path to an .npz file") from None


def _data_source(builder: tfds.core.DatasetBuilder, split: str, data_dir: str):
  """A random-access array_record source; prepares embedded data on first use."""
  if isinstance(builder, tuple(EMBEDDED.values())):
    builder.download_and_prepare()
    return builder.as_data_source(split)
  return tfds.data_source(builder.name, split=split, data_dir=data_dir)


def _from_tfds(name: str, data_dir: str) -> Dataset:
  builder = _builder(name, data_dir)
  features = builder.info.features
  if "image" not in features or "label" not in features or not isinstance(
      features["label"], tfds.features.ClassLabel):
    raise ConfigError(f"TFDS dataset {name!r} has no image and class-label "
                      "features; dlcore classifies images")
  num_classes = features["label"].num_classes
  splits = {}
  for part in ("train", "test"):
    try:
      source = _data_source(builder, part, data_dir)
    except Exception as e:  # Downloads, missing files, unprepared data.
      first_line = str(e).splitlines()[0] if str(e) else ""
      raise ConfigError(
          f"could not load TFDS dataset {name!r} from {data_dir!r} "
          f"({type(e).__name__}: {first_line}); prepare it there first "
          "with network access") from None
    examples = [source[i] for i in range(len(source))]
    images = np.stack([ex["image"] for ex in examples])
    labels = np.array([ex["label"] for ex in examples])
    splits[part] = Split(_as_images(images, f"{name} {part} images"),
                         _as_labels(labels, f"{name} {part} labels", num_classes))
  return Dataset(name, splits["train"], splits["test"], num_classes)
