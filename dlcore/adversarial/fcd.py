"""Sample quality without downloads: the Fréchet classifier distance (FCD).

Usage::

  judge = load_or_train_judge("digits", data, workdir / "classifier")
  real = judge.features(data.test.images)            # [N, 256]
  fcd = frechet_distance(real, judge.features(fake))  # fake in [0, 1]
  accuracy = judge.accuracy(fake, labels)             # conditional GANs

FID needs an ImageNet Inception network, which cannot be downloaded here,
so the features come from a classifier that dlcore trains itself on the
same dataset: the Flax MNIST ``CNN``, whose ``features`` are its 256-d
penultimate layer. It is trained once with ``train_and_evaluate`` and
cached in a directory of its own per dataset, named by the dataset and a
hash of its arrays (reused by later runs on the same data, resumed if it
was interrupted; another dataset, even of the same shape, gets its own). The distance between Gaussians fitted to the two feature
sets is Fréchet's ``||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1^1/2 S_2
S_1^1/2)^1/2)``, as in FID. Numbers are comparable only under the same
classifier and sample counts.
"""

import dataclasses
import hashlib
import json
import pathlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcore import parallel
from dlcore.adversarial.state import GANState, cycling_labels, sample_images
from dlcore.checkpoint import Checkpointer
from dlcore.data import Dataset, Split
from dlcore.loop import CHECKPOINT_DIR
from dlcore.models import CNN
from dlcore.supervised import ClassifyConfig, train_and_evaluate


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
  """The symmetric square root of a positive semi-definite matrix."""
  values, vectors = np.linalg.eigh(matrix)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to ``[N, D]`` and ``[M, D]`` features."""
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root_a = _sqrtm_psd(cov_a)
  cross = _sqrtm_psd(root_a @ cov_b @ root_a)
  return float(np.sum((mu_a - mu_b) ** 2)
               + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(cross))


class Judge:
  """A trained classifier that embeds and labels images ``[N, H, W, C]`` in [0, 1]."""

  def __init__(self, params: Any, num_classes: int, test_accuracy: float,
               batch_size: int = 500):
    variables = {"params": params}
    model = CNN(num_classes)
    self.test_accuracy = test_accuracy
    self._batch_size = batch_size
    self._features = jax.jit(
        lambda x: model.apply(variables, x, method=CNN.features))
    self._logits = jax.jit(lambda x: model.apply(variables, x))

  def _map(self, fn, images: np.ndarray) -> np.ndarray:
    return np.concatenate([
        np.asarray(fn(jnp.asarray(images[i:i + self._batch_size])))
        for i in range(0, len(images), self._batch_size)])

  def features(self, images: np.ndarray) -> np.ndarray:
    """Penultimate-layer features ``[N, 256]``."""
    return self._map(self._features, images)

  def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of ``images`` classified as their ``labels``."""
    predictions = self._map(self._logits, images).argmax(-1)
    return float(np.mean(predictions == np.asarray(labels)))


def dataset_fingerprint(data: Dataset) -> str:
  """A hex digest of every image and label of ``data`` (and their shapes)."""
  digest = hashlib.blake2b(digest_size=16)
  for split in (data.train, data.test):
    for array in (split.images, split.labels):
      digest.update(repr((array.shape, str(array.dtype))).encode())
      digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def judge_directory(data: Dataset, cache: str | pathlib.Path) -> pathlib.Path:
  """Where ``cache`` keeps the classifier of ``data``: ``cache/NAME-HASH``."""
  name = re.sub(r"[^A-Za-z0-9_.-]", "_", data.name)
  return pathlib.Path(cache) / f"{name}-{dataset_fingerprint(data)[:16]}"


def load_or_train_judge(dataset: str, data: Dataset,
                        cache: str | pathlib.Path, *,
                        data_dir: str | None = None, epochs: int = 20,
                        seed: int = 0) -> Judge:
  """The FCD classifier of ``data``, trained into ``judge_directory(data, cache)`` unless there.

  ``dataset`` is how ``data`` was loaded (a name or ``.npz`` path, as
  ``load_dataset`` takes it).
  """
  directory = judge_directory(data, cache)
  config = ClassifyConfig(dataset=dataset, data_dir=data_dir, model="cnn",
                          epochs=epochs, seed=seed, workdir=str(directory),
                          batch_size=min(ClassifyConfig.batch_size,
                                         len(data.train)))
  summary_path = directory / "summary.json"
  if not summary_path.exists():
    probe = Checkpointer(directory / CHECKPOINT_DIR)
    resume = probe.latest_step() is not None  # Resume an interrupted training.
    probe.close()
    train_and_evaluate(dataclasses.replace(config, resume=resume))
  summary = json.loads(summary_path.read_text())
  checkpointer = Checkpointer(directory / CHECKPOINT_DIR)
  state, _ = checkpointer.restore_latest()  # Nested dicts of arrays.
  checkpointer.close()
  return Judge(state["params"], data.num_classes, summary["test_accuracy"])


class GeneratorQuality:
  """``quality(state)``: the FCD of a generator's samples against ``real`` images.

  The generator draws one sample per real image from a fixed noise (``key``)
  every time, so the numbers of different steps compare; a conditional
  generator draws the labels ``cycling_labels`` gives and is also scored by
  ``conditional_accuracy``, the judge's accuracy on them.
  """

  def __init__(self, judge: Judge, real: np.ndarray, latent_dim: int, *,
               key: jax.Array):
    self.judge = judge
    self.real_features = judge.features(real)
    self.z = jax.random.normal(key, (len(real), latent_dim))
    self.sample = jax.jit(sample_images)

  def __call__(self, state: GANState) -> dict[str, float]:
    fake = parallel.to_host(self.sample(state, self.z))
    quality = {"fcd": frechet_distance(self.real_features,
                                       self.judge.features(fake))}
    if state.conditional:
      quality["conditional_accuracy"] = self.judge.accuracy(
          fake, cycling_labels(state, len(fake)))
    return quality

  def train_images_fcd(self, train: Split) -> float:
    """The FCD of as many real training images: the floor a perfect generator reaches."""
    count = len(self.real_features)
    return frechet_distance(self.real_features,
                            self.judge.features(train.images[:count]))
