"""``digit_canvases``: the embedded segmentation dataset, a TFDS builder prepared offline.

Each example is a 32x32 grey-scale canvas holding 1 to 4 of the UCI
handwritten digits that ship with scikit-learn (the ``digits`` dataset,
``dlcore.data.digits``), with a mask labelling every pixel: 0 background,
``d + 1`` a stroke of digit ``d`` (11 classes). How a canvas is built:

1. Draw the number of digits uniformly from 1..4 and, for each, a source
   digit uniformly (with replacement) from the split's pool and a size
   uniformly from 12..16 pixels.
2. Upscale the 8x8 digit (intensities in [0, 1]) to that size bilinearly
   (``scipy.ndimage.zoom``, order 1); its stroke is where the upscaled
   intensity is at least 0.5.
3. Draw its top-left corner uniformly on the canvas, up to 20 times, until
   its stroke overlaps no earlier stroke (else leave the digit out), so
   every stroke pixel belongs to exactly one digit.
4. The canvas is the pixelwise maximum of the placed digits (uint8, 0..255);
   the mask gives each stroke pixel its digit's class.

``train`` (10,000 canvases) uses only the 1,437 digits of the ``digits``
train split and ``test`` (1,000) only its 360 test digits, so no test digit
is ever seen in training; ``digit_ids`` records the source digits (indices
into ``sklearn.datasets.load_digits``, -1 for an unused slot). The draws
come from ``numpy.random.default_rng([2026, s])`` with ``s`` 0 for train
and 1 for test, so the dataset is the same on every machine. Images and
masks are ``Tensor`` features (TFDS encodes ``Image`` features with
TensorFlow, which dlcore does not depend on); preparing takes a few
seconds and needs neither TensorFlow nor a network.
"""

import numpy as np
import scipy.ndimage
import tensorflow_datasets as tfds

from dlcore.data.digits import NUM_TRAIN, digits_arrays

SIZE = 32
NUM_CLASSES = 11  # Background and the ten digits.
MAX_DIGITS = 4
DIGIT_SIZES = (12, 16)  # Smallest and largest, in pixels.
PLACEMENT_TRIES = 20
SEED = 2026
NUM_CANVASES = {"train": 10_000, "test": 1_000}


def make_canvases(digits: np.ndarray, labels: np.ndarray, ids: np.ndarray,
                  count: int, rng: np.random.Generator):
  """``count`` canvases from the digits ``[N, 8, 8]`` in [0, 1]; see the module docstring.

  Returns images ``[count, SIZE, SIZE, 1]`` uint8, masks ``[count, SIZE,
  SIZE, 1]`` uint8 and the source ``ids`` used ``[count, MAX_DIGITS]``.
  """
  sizes = range(DIGIT_SIZES[0], DIGIT_SIZES[1] + 1)
  upscaled = {size: np.clip(scipy.ndimage.zoom(digits, (1, size / 8, size / 8),
                                               order=1), 0, 1)
              for size in sizes}
  images = np.zeros((count, SIZE, SIZE, 1), np.uint8)
  masks = np.zeros((count, SIZE, SIZE, 1), np.uint8)
  used = np.full((count, MAX_DIGITS), -1, np.int64)
  for n in range(count):
    canvas = np.zeros((SIZE, SIZE), np.float32)
    for slot in range(rng.integers(1, MAX_DIGITS + 1)):
      i = rng.integers(len(digits))
      size = rng.integers(DIGIT_SIZES[0], DIGIT_SIZES[1] + 1)
      digit = upscaled[size][i]
      stroke = digit >= 0.5
      for _ in range(PLACEMENT_TRIES):
        top, left = rng.integers(0, SIZE - size + 1, 2)
        window = (slice(top, top + size), slice(left, left + size))
        if not np.any(masks[n, window[0], window[1], 0][stroke]):
          canvas[window] = np.maximum(canvas[window], digit)
          masks[n, window[0], window[1], 0][stroke] = labels[i] + 1
          used[n, slot] = ids[i]
          break
    images[n, ..., 0] = np.round(canvas * 255)
  return images, masks, used


class DigitCanvases(tfds.core.GeneratorBasedBuilder):
  """Canvases of UCI digits with per-pixel masks; see the module docstring."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(SIZE, SIZE, 1),
                                          dtype=np.uint8),
            "segmentation_mask": tfds.features.Tensor(shape=(SIZE, SIZE, 1),
                                                      dtype=np.uint8),
            "digit_ids": tfds.features.Tensor(shape=(MAX_DIGITS,),
                                              dtype=np.int64),
        }),
        supervised_keys=("image", "segmentation_mask"),
        homepage="https://archive.ics.uci.edu/dataset/80",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: scikit-learn ships the digits.
    return {"train": self._generate_examples("train"),
            "test": self._generate_examples("test")}

  def _generate_examples(self, split: str):
    images, labels, ids = digits_arrays()
    pool = slice(0, NUM_TRAIN) if split == "train" else slice(NUM_TRAIN, None)
    rng = np.random.default_rng([SEED, 0 if split == "train" else 1])
    canvases, masks, used = make_canvases(
        images[pool, ..., 0] / 255.0, labels[pool], ids[pool],
        NUM_CANVASES[split], rng)
    for n in range(len(canvases)):
      yield n, {"image": canvases[n], "segmentation_mask": masks[n],
                "digit_ids": used[n]}
