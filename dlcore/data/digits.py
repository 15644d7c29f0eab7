"""``digits``: the embedded default dataset, a real TFDS builder prepared offline.

The UCI handwritten digits that scikit-learn ships inside its package: 1,797
grey-scale 8x8 images of the digits 0-9. Pixel intensities 0..16 are scaled
to uint8 0..255 (``round(v * 255 / 16)``). The split is fixed: the examples
are permuted once with ``numpy.random.default_rng(0)``; the first 1,437
(80%) are ``train`` and the remaining 360 are ``test``.

The image is stored as a ``Tensor`` feature, not an ``Image`` feature,
because TFDS encodes ``Image`` features to PNG with TensorFlow, which dlcore
does not depend on. Preparation writes array_record files in well under a
second and needs neither TensorFlow nor a network.
"""

import numpy as np
import tensorflow_datasets as tfds

NUM_TRAIN = 1437
NUM_EXAMPLES = 1797


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
  """All 1,797 images ``[N, 8, 8, 1]`` uint8 and labels ``[N]``, in split order."""
  images, labels, _ = digits_arrays()
  return images, labels


def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Images ``[N, 8, 8, 1]`` uint8, labels ``[N]`` and indices into ``load_digits`` ``[N]``, in split order."""
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  digits = load_digits()
  images = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
  order = np.random.default_rng(0).permutation(len(images))
  return images[order], digits.target[order].astype(np.int64), order


class Digits(tfds.core.GeneratorBasedBuilder):
  """The scikit-learn/UCI 8x8 handwritten digits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://archive.ics.uci.edu/dataset/80",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: scikit-learn ships the data.
    return {
        "train": self._generate_examples(0, NUM_TRAIN),
        "test": self._generate_examples(NUM_TRAIN, NUM_EXAMPLES),
    }

  def _generate_examples(self, start: int, stop: int):
    images, labels = _digits_arrays()
    for i in range(start, stop):
      yield i, {"image": images[i], "label": labels[i]}
