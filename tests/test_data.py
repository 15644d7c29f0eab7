"""Datasets: the digits builder, npz files, TFDS by name (mock data), batching."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import write_npz
from dlcore.data import load_dataset, train_batches, steps_per_epoch, Split
from dlcore.data.digits import _digits_arrays
from dlcore.errors import ConfigError


def test_digits_builder_prepares_the_documented_split(digits):
  assert (len(digits.train), len(digits.test)) == (1437, 360)
  assert digits.image_shape == (8, 8, 1) and digits.num_classes == 10
  assert digits.train.images.dtype == np.float32
  assert digits.train.images.min() == 0.0 and digits.train.images.max() == 1.0
  images, labels = _digits_arrays()  # sklearn order after the fixed permutation
  # The TFDS split holds exactly those examples (TFDS shuffles file order).
  key = lambda x, y: sorted(zip(y.tolist(), (x * 255).round().astype(int).reshape(len(y), -1).tolist()))
  assert key(digits.test.images, digits.test.labels) == key(images[1437:] / 255.0, labels[1437:])
  assert np.bincount(digits.train.labels).min() > 120  # every class present


def test_npz_with_nhw_uint8_images_gets_a_channel_and_unit_range(tmp_path):
  path = write_npz(tmp_path / "d.npz", shape=(6, 5))
  data = load_dataset(str(path))
  assert data.image_shape == (6, 5, 1) and data.num_classes == 4
  with np.load(path) as arrays:
    np.testing.assert_array_equal(
        data.train.images, arrays["x_train"][..., None] / np.float32(255))
    np.testing.assert_array_equal(data.test.labels, arrays["y_test"])
  assert data.train.labels.dtype == np.int32


def test_npz_float_images_are_kept(tmp_path):
  x = np.full((4, 3, 3, 2), 0.25, np.float32)
  path = tmp_path / "f.npz"
  np.savez(path, x_train=x, y_train=np.array([0, 1, 2, 1]), x_test=x[:2],
           y_test=np.array([0, 2]))
  data = load_dataset(str(path))
  assert data.image_shape == (3, 3, 2) and np.all(data.test.images == 0.25)


@pytest.mark.parametrize("overrides,message", [
    ({"y_test": None}, "lacks y_test"),
    ({"y_train": np.zeros(63, np.int64)}, "64 images but y_train has 63 labels"),
    ({"y_train": np.arange(64) % 4 - 1}, "label -1 outside"),
    ({"y_test": np.full(20, 9)}, r"label 9 outside \[0, 4\)"),
    ({"y_train": np.linspace(0, 3, 64)}, "integer class labels"),
])
def test_bad_npz_files_get_one_clear_sentence(tmp_path, overrides, message):
  path = write_npz(tmp_path / "bad.npz", **overrides)
  with pytest.raises(ConfigError, match=message):
    load_dataset(str(path))


def test_missing_npz_file_and_unknown_name(tmp_path):
  with pytest.raises(ConfigError, match="does not exist"):
    load_dataset(str(tmp_path / "nothing.npz"))
  with pytest.raises(ConfigError, match="unknown dataset 'nmist'; choose digits"):
    load_dataset("nmist", str(tmp_path))


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)),
                                        ("cifar10", (32, 32, 3))])
def test_tfds_datasets_load_by_name(tmp_path, name, shape):
  with tfds.testing.mock_data(num_examples=12):
    data = load_dataset(name, str(tmp_path))
    raw = {part: tfds.data_source(name, split=part, data_dir=str(tmp_path))
           for part in ("train", "test")}
    raw = {part: [source[i] for i in range(len(source))]
           for part, source in raw.items()}
  assert data.image_shape == shape and data.num_classes == 10
  for split, examples in ((data.train, raw["train"]), (data.test, raw["test"])):
    assert len(split) == len(examples) == 12
    # The uint8 images in [0, 1] and the labels, in the source's order.
    np.testing.assert_array_equal(
        split.images, np.stack([e["image"] for e in examples]) / np.float32(255))
    np.testing.assert_array_equal(split.labels, [e["label"] for e in examples])
    assert split.images.dtype == np.float32 and split.labels.dtype == np.int32


def test_batch_size_larger_than_the_training_set_is_rejected():
  with pytest.raises(ConfigError, match="batch size 100 must be between 1 and the 64"):
    steps_per_epoch(64, 100)


def test_train_batches_are_reproducible_and_resume_exactly():
  split = Split(np.arange(10, dtype=np.float32)[:, None], np.arange(10, dtype=np.int32))
  take = lambda it, n: [b["label"].tolist() for _, b in zip(range(n), it)]
  full = take(train_batches(split, 3, seed=7), 9)  # 3 epochs of 3 batches
  assert full == take(train_batches(split, 3, seed=7), 9)
  assert full != take(train_batches(split, 3, seed=8), 9)
  assert take(train_batches(split, 3, seed=7, start_step=4), 5) == full[4:]
  for epoch in range(3):  # No repeats within an epoch; the remainder is dropped.
    rows = sum(full[3 * epoch:3 * epoch + 3], [])
    assert len(set(rows)) == 9


def test_npz_without_labels_loads_only_when_labels_are_optional(tmp_path):
  path = write_npz(tmp_path / "u.npz", y_train=None, y_test=None)
  with pytest.raises(ConfigError, match="lacks y_train, y_test"):
    load_dataset(str(path))
  data = load_dataset(str(path), labels_required=False)
  assert data.num_classes == 0 and data.image_shape == (8, 8, 1)
  assert not data.train.labels.any() and data.train.images.max() == 1.0
  bad = tmp_path / "bad.npz"
  np.savez(bad, x_train=np.zeros((4, 3), np.uint8), x_test=np.zeros((2, 3), np.uint8))
  with pytest.raises(ConfigError, match=r"x_train must have shape \[N, H, W\]"):
    load_dataset(str(bad), labels_required=False)
