"""Write an MNIST-format ``.npz`` built offline from the embedded digits.

MNIST itself cannot be downloaded on machines without network access, so
this makes a stand-in of the same format: 28x28 uint8 images with the digit
in the central 20x20 box (as in MNIST), in the arrays ``x_train``,
``y_train``, ``x_test``, ``y_test`` that ``--dataset file.npz`` reads.
Each image is a ``digits`` example upscaled 8x8 -> 20x20 (bilinear), padded
to 28x28, then moved by a random affine map (rotation +-15 degrees, scale
0.85-1.15, shear +-0.15, shift +-2 px). Training images come only from the
digits train split and test images only from its test split, so no source
image is shared between them. It is not MNIST: its figures say nothing
about MNIST accuracy.

  python experiments/make_mnist_like_npz.py --out digits28.npz
  python experiments/classify.py --dataset digits28.npz --model cnn
"""

import argparse
import io

import numpy as np
from scipy import ndimage

from dlcore import files
from dlcore.data import load_dataset


def _random_affine(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  angle = np.deg2rad(rng.uniform(-15, 15))
  scale = rng.uniform(0.85, 1.15)
  shear = rng.uniform(-0.15, 0.15)
  rotation = np.array([[np.cos(angle), -np.sin(angle)],
                       [np.sin(angle), np.cos(angle)]])
  matrix = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) / scale
  center = np.array([13.5, 13.5])
  offset = center - matrix @ (center + rng.uniform(-2, 2, size=2))
  return ndimage.affine_transform(image, matrix, offset=offset, order=1)


def mnist_like(images: np.ndarray, labels: np.ndarray, count: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """``count`` 28x28 uint8 images drawn (with replacement) from 8x8 ``images``."""
  rows = rng.integers(0, len(images), count)
  out = np.empty((count, 28, 28), np.uint8)
  for i, row in enumerate(rows):
    digit = ndimage.zoom(images[row, :, :, 0], 20 / 8, order=1)
    canvas = np.pad(digit, 4)
    out[i] = np.clip(np.round(_random_affine(canvas, rng) * 255), 0, 255)
  return out, labels[rows].astype(np.uint8)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default="digits28.npz", help="output file")
  parser.add_argument("--train", type=int, default=8000, help="training images")
  parser.add_argument("--test", type=int, default=2000, help="test images")
  parser.add_argument("--seed", type=int, default=0, help="augmentation seed")
  args = parser.parse_args()
  digits = load_dataset("digits")
  rng = np.random.default_rng(args.seed)
  x_train, y_train = mnist_like(digits.train.images, digits.train.labels,
                                args.train, rng)
  x_test, y_test = mnist_like(digits.test.images, digits.test.labels,
                              args.test, rng)
  buffer = io.BytesIO()
  np.savez_compressed(buffer, x_train=x_train, y_train=y_train,
                      x_test=x_test, y_test=y_test)
  files.write_atomic(args.out, buffer.getvalue())
  print(f"wrote {args.out}: {len(x_train)} train and {len(x_test)} test "
        "28x28 images")


if __name__ == "__main__":
  main()
