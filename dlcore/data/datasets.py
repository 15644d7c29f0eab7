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

import contextlib
import dataclasses
import logging
import os
import pathlib
import shutil
import socket
import zipfile
import zlib

import numpy as np
import tensorflow_datasets as tfds

from dlcore.data.digit_domains import DOMAIN_BUILDERS
from dlcore.data.digits import Digits
from dlcore.errors import ConfigError

DEFAULT_DATA_DIR = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Prepared offline from what scikit-learn ships; see their modules.
EMBEDDED = {"digits": Digits, **DOMAIN_BUILDERS}
# A dataset that is not prepared is downloaded; TFDS looks for it first in
# its bucket on this host. Unreachable within the timeout: no retries.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
DOWNLOAD_TIMEOUT_SECONDS = 5.0


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
  if not name.strip():
    raise ConfigError("option dataset is empty; give digits, a TFDS name "
                      "such as mnist, or a path to an .npz file")
  if name.endswith(".npz"):
    data = _from_npz(pathlib.Path(name), labels_required)
  else:
    data = _from_tfds(name, data_dir or DEFAULT_DATA_DIR)
  check_dataset(data)
  return data


def check_dataset(data: Dataset) -> None:
  """Raises ``ConfigError`` unless every split has examples, finite pixels
  and labels that leave no more than half of the classes empty."""
  for part in ("train", "test"):
    split = getattr(data, part)
    if len(split) == 0:
      raise ConfigError(f"dataset {data.name!r} has an empty {part} split; "
                        "it needs at least one example in each of train and "
                        "test")
    if 0 in split.images.shape[1:]:
      raise ConfigError(f"dataset {data.name!r} has {part} images of shape "
                        f"{list(split.images.shape[1:])}, which hold no "
                        "pixels")
    finite = np.isfinite(split.images).reshape(len(split), -1).all(-1)
    if not finite.all():
      raise ConfigError(
          f"dataset {data.name!r} has NaN or infinite pixels in "
          f"{np.sum(~finite)} {part} images, the first at index "
          f"{int(np.argmin(finite))}; images must be finite")
  if data.num_classes:
    present = np.union1d(np.unique(data.train.labels),
                         np.unique(data.test.labels))
    if 2 * len(present) < data.num_classes:
      raise ConfigError(
          f"dataset {data.name!r} has labels up to {data.num_classes - 1}, "
          f"so {data.num_classes} classes, but only {len(present)} of them "
          "occur; labels must be class indices 0 to (number of classes - 1)")


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
  if y.ndim != 1 or not (
      np.issubdtype(y.dtype, np.integer)
      or (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))):
    kind = "strings" if y.dtype.kind in "US" else str(y.dtype)
    raise ConfigError(f"{what} must be a 1-D array of integer class labels, "
                      f"got {kind} of shape {list(y.shape)}")
  y = y.astype(np.int64)
  upper = num_classes if num_classes is not None else np.inf
  bad = (y < 0) | (y >= upper)
  if bad.any():
    raise ConfigError(
        f"{what} holds label {y[bad][0]} outside [0, {num_classes or 'num_classes'}); "
        "labels must be class indices")
  return y.astype(np.int32)


def _check_npz_file(path: pathlib.Path) -> None:
  """Raises ``ConfigError`` unless ``path`` is a file that could be an npz archive."""
  if not path.is_file():
    raise ConfigError(f"dataset file {str(path)!r} " + (
        "is not a file" if path.exists() else "does not exist"))
  try:
    with open(path, "rb") as f:
      head = f.read(6)
  except OSError as e:
    raise ConfigError(f"dataset file {str(path)!r} cannot be read "
                      f"({e.strerror})") from None
  if not zipfile.is_zipfile(path):
    what = ("empty" if not head else "a single .npy array"
            if head == b"\x93NUMPY" else "not a zip archive, or a truncated one")
    raise ConfigError(
        f"dataset file {str(path)!r} is not an npz file ({what}); save the "
        "arrays x_train, y_train, x_test, y_test with numpy.savez")
  try:
    with zipfile.ZipFile(path) as archive:
      archive.infolist()
  except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
    raise ConfigError(f"dataset file {str(path)!r} is damaged ("
                      f"{type(e).__name__}: {str(e).splitlines()[0]})") from None


def _read_array(npz, key: str, path: pathlib.Path) -> np.ndarray:
  """Array ``key`` of the open npz ``path``; ``ConfigError`` for objects or damage."""
  try:
    return npz[key]
  except ValueError as e:
    if "Object arrays" in str(e):
      raise ConfigError(
          f"{path.name}: {key} holds Python objects (dtype object); an npz "
          "dataset needs numeric arrays") from None
    damage = e
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
    damage = e
  raise ConfigError(
      f"dataset file {str(path)!r} is damaged, {key} cannot be read "
      f"({type(damage).__name__}: {str(damage).splitlines()[0]})")


def _check_npz_arrays(arrays: dict[str, np.ndarray], path: pathlib.Path) -> None:
  """Raises ``ConfigError`` for a scalar where an array belongs, or no images."""
  for key, array in arrays.items():
    if array.ndim == 0:
      raise ConfigError(f"{path.name}: {key} is a single value, not an array "
                        "with one entry per example")
    if key.startswith("x_") and len(array) == 0:
      raise ConfigError(f"{path.name}: {key} holds no images; an npz dataset "
                        "needs at least one example in each of train and test")


def _from_npz(path: pathlib.Path, labels_required: bool = True) -> Dataset:
  _check_npz_file(path)
  with np.load(path) as npz:
    unlabelled = (not labels_required
                  and not {"y_train", "y_test"} & set(npz.files))
    keys = ("x_train", "x_test") if unlabelled else NPZ_KEYS
    missing = [k for k in keys if k not in npz.files]
    if missing:
      raise ConfigError(
          f"{path.name} lacks {', '.join(missing)}; an npz dataset needs the "
          f"arrays {', '.join(keys)}")
    arrays = {k: _read_array(npz, k, path) for k in keys}
  _check_npz_arrays(arrays, path)
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
  except (ValueError, AssertionError) as e:  # A bad version or config.
    raise ConfigError(
        f"TFDS cannot build dataset {name!r} ({str(e).splitlines()[0]}); "
        "write it as NAME, NAME:VERSION or NAME/CONFIG:VERSION, such as "
        "mnist or mnist:3.0.1") from None


def _check_downloadable(name: str, data_dir: str) -> None:
  """Raises ``ConfigError`` at once when the download host cannot be reached."""
  host, port = DOWNLOAD_HOST
  try:
    socket.create_connection(DOWNLOAD_HOST,
                             timeout=DOWNLOAD_TIMEOUT_SECONDS).close()
  except OSError as e:
    raise ConfigError(
        f"TFDS dataset {name!r} is not prepared in {data_dir!r} and cannot "
        f"be downloaded: {host}:{port} is unreachable "
        f"({e.strerror or type(e).__name__}); prepare it there with network "
        "access, or use digits or an .npz file") from None


@contextlib.contextmanager
def _no_trace_on_failure(data_dir: str):
  """Removes what the block created in ``data_dir`` (two levels deep) if it raises."""
  root = pathlib.Path(data_dir)
  existed = root.exists()

  def entries() -> set[pathlib.Path]:
    if not root.is_dir():
      return set()
    top = set(root.iterdir())
    return top | {p for d in top if d.is_dir() for p in d.iterdir()}

  before = entries()
  try:
    yield
  except BaseException:
    new = [root] if not existed else sorted(entries() - before)
    for path in new:
      if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
      elif path.exists():
        path.unlink()
    raise


def prepare_quietly(builder: tfds.core.DatasetBuilder) -> None:
  """Prepares an embedded dataset (a second or two, once) without TFDS's progress bars.

  A run refused just after it then prints only its one sentence. (TFDS
  offers no way to read the setting back; its default, on, is restored.)
  """
  tfds.display_progress_bar(False)
  try:
    builder.download_and_prepare()
  finally:
    tfds.display_progress_bar(True)


def _data_source(builder: tfds.core.DatasetBuilder, split: str, data_dir: str):
  """A random-access array_record source; prepares embedded data on first use."""
  if isinstance(builder, tuple(EMBEDDED.values())):
    prepare_quietly(builder)
    return builder.as_data_source(split)
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)  # "Variant folder ... has no dataset_info".
  try:
    return tfds.data_source(builder.name, split=split, data_dir=data_dir,
                            download=False)
  except Exception:  # pylint: disable=broad-exception-caught
    if (pathlib.Path(builder.data_dir) / "dataset_info.json").exists():
      raise  # Prepared, yet unreadable.
  finally:
    absl_logger.setLevel(level)
  _check_downloadable(builder.name, data_dir)
  return tfds.data_source(builder.name, split=split, data_dir=data_dir)


def _from_tfds(name: str, data_dir: str) -> Dataset:
  check_data_dir(data_dir)
  with _no_trace_on_failure(data_dir):
    return _read_tfds(name, data_dir)


def check_data_dir(data_dir: str) -> None:
  """``ConfigError`` when ``data_dir`` cannot hold TFDS data: a file, or not writable where it is missing or empty."""
  path = pathlib.Path(data_dir)
  existing = next((p for p in (path, *path.parents) if p.exists()), None)
  if path.exists() and not path.is_dir():
    raise ConfigError(f"data directory {data_dir!r} is a file, not a "
                      "directory; give option data_dir a directory")
  if existing is not None and existing.is_dir() and not os.access(
      existing, os.W_OK) and not (path.is_dir() and any(path.iterdir())):
    raise ConfigError(f"data directory {data_dir!r} cannot be written "
                      f"({str(existing)!r} is read-only) and holds no "
                      "prepared dataset; give option data_dir a writable "
                      "directory")


def _read_tfds(name: str, data_dir: str) -> Dataset:
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
    except ConfigError:
      raise
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
