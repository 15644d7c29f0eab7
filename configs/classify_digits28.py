"""The Flax MNIST CNN on the 28x28 stand-in built by experiments/make_mnist_like_npz.py.

  python experiments/make_mnist_like_npz.py --out digits28.npz
  python experiments/classify.py --config configs/classify_digits28.py
"""

from dlcore.supervised import ClassifyConfig


def get_config() -> ClassifyConfig:
  return ClassifyConfig(dataset="digits28.npz", model="cnn", epochs=10,
                        workdir="runs/classify_digits28")
