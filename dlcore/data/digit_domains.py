"""``digits32`` and ``digits32_photo``: two embedded, unpaired image domains, prepared offline.

The default domains of CycleGAN (``experiments/cyclegan.py``), built from
what scikit-learn ships, so no download is needed:

- ``digits32`` (domain A): the ``digits`` images (grey strokes on black)
  resized from 8x8 to 32x32 pixels (bilinear, ``scipy.ndimage.zoom`` of
  order 1, clipped to 0..255) and repeated to three equal channels.
- ``digits32_photo`` (domain B): the same kind of 32x32 digits blended
  onto colour photographs, the MNIST-M recipe (Ganin & Lempitsky, 2015):
  ``|patch - digit|`` per channel, where ``patch`` is an 8x8 crop of one
  of the two photographs of ``sklearn.datasets.load_sample_images()``
  (china, flower; 427x640), photograph and corner drawn uniformly with
  ``numpy.random.default_rng`` seeded per split, resized to 32x32
  (bilinear): smooth colour patches. The strokes themselves are 8x8
  digits blown up, so photo detail at full resolution (32x32 crops) hides
  them: a classifier trained on such a domain reached 0.84 test accuracy,
  on 16x16 crops 0.89.

The domains are unpaired: ``digits32``'s train split is the first half
(718 images) of ``digits``' train split and ``digits32_photo``'s the
second half (719), so no image has a partner in the other domain. Both
test splits are made from ``digits``' test split (360 images). Labels are
the digits' classes 0-9 (used only to measure what a translation keeps).
"""

import numpy as np
import tensorflow_datasets as tfds

from dlcore.data.digits import NUM_EXAMPLES, NUM_TRAIN, _digits_arrays

SIZE = 32
CROP = 8  # Side of the photo crops, resized to SIZE.
HALF = NUM_TRAIN // 2  # digits32 takes train rows [0, HALF), the photo domain the rest.


def grey_digits(images: np.ndarray) -> np.ndarray:
  """``[N, 8, 8, 1]`` uint8 digits as ``[N, 32, 32, 3]`` uint8, bilinearly resized."""
  return np.repeat(_zoom(images[..., 0])[..., None], 3, axis=-1)


def _zoom(images: np.ndarray) -> np.ndarray:
  """``[N, h, w, ...]`` uint8 images bilinearly resized to ``[N, 32, 32, ...]``."""
  from scipy import ndimage  # pylint: disable=import-outside-toplevel
  factors = (1, SIZE / images.shape[1], SIZE / images.shape[2])
  zoomed = ndimage.zoom(images.astype(np.float32),
                        factors + (1,) * (images.ndim - 3), order=1)
  return np.clip(np.round(zoomed), 0, 255).astype(np.uint8)


def photo_patches(count: int, seed: int) -> np.ndarray:
  """``count`` random 8x8 crops of scikit-learn's photographs, as ``[count, 32, 32, 3]`` uint8."""
  from sklearn.datasets import load_sample_images  # pylint: disable=import-outside-toplevel
  photos = load_sample_images().images
  rng = np.random.default_rng(seed)
  which = rng.integers(0, len(photos), count)
  rows = rng.integers(0, photos[0].shape[0] - CROP + 1, count)
  columns = rng.integers(0, photos[0].shape[1] - CROP + 1, count)
  return _zoom(np.stack([photos[p][r:r + CROP, c:c + CROP]
                         for p, r, c in zip(which, rows, columns)]))


def blend(digits: np.ndarray, patches: np.ndarray) -> np.ndarray:
  """MNIST-M's ``|patch - digit|`` of uint8 images ``[N, 32, 32, 3]``."""
  return np.abs(patches.astype(np.int16) - digits.astype(np.int16)).astype(
      np.uint8)


def _grey_rows(domain: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """``domain``'s ``split`` before blending: ``(grey digits [N, 32, 32, 3] uint8, labels [N])``."""
  images, labels = _digits_arrays()
  rows = {("grey", "train"): slice(0, HALF),
          ("photo", "train"): slice(HALF, NUM_TRAIN)}.get(
              (domain, split), slice(NUM_TRAIN, NUM_EXAMPLES))
  return grey_digits(images[rows]), labels[rows]


def photo_pairs(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(photos, digits, labels)``: ``digits32_photo``'s ``split`` and the grey digit under each photo.

  ``photos[i] = blend(digits[i], patch_i)``; both ``[N, 32, 32, 3]`` uint8.
  CycleGAN never sees these pairs; they measure what a translator trained
  on pairs keeps (``experiments/cyclegan_paired_bound.py``).
  """
  digits, labels = _grey_rows("photo", split)
  patches = photo_patches(len(digits), seed=0 if split == "train" else 1)
  return blend(digits, patches), digits, labels


def domain_arrays(domain: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """``(images [N, 32, 32, 3] uint8, labels [N])`` of ``domain`` (``"grey"``, ``"photo"``)."""
  if domain == "photo":
    photos, _, labels = photo_pairs(split)
    return photos, labels
  return _grey_rows(domain, split)


class _DigitDomain(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One embedded domain; subclasses name it by ``DOMAIN``."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  DOMAIN = ""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(SIZE, SIZE, 3),
                                          dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: scikit-learn ships the data.
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _generate_examples(self, split: str):
    images, labels = domain_arrays(self.DOMAIN, split)
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": label}


class Digits32(_DigitDomain):
  """Domain A: 32x32 grey digits on black (three equal channels)."""
  DOMAIN = "grey"


class Digits32Photo(_DigitDomain):
  """Domain B: 32x32 digits blended onto colour photo patches (MNIST-M recipe)."""
  DOMAIN = "photo"


DOMAIN_BUILDERS = {"digits32": Digits32, "digits32_photo": Digits32Photo}
