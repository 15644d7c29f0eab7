"""What a translation keeps: label preservation, Fréchet classifier distance, cycle L1.

Usage::

  quality = TranslationQuality(judge_a, judge_b, data_a.test, data_b.test)
  quality(state)   # {"label_preservation_ab": ..., "fcd_b": ..., "cycle_l1": ...}
  quality.references()   # the baselines and ceilings, computed once
  quality.grid(state, "ab", count=10)   # [3 * 10, H, W, C]: a, G(a), F(G(a))

``judge_a`` and ``judge_b`` (``dlcore.adversarial.fcd.Judge``) are
classifiers trained on real images of domain A and B. For the direction
``ab`` (G: A -> B) on the test images ``a`` of A with labels ``y``:

- ``label_preservation_ab``: judge B's accuracy on ``G(a)`` against ``y``;
  beside it ``label_preservation_ab_baseline``, its accuracy on the
  untranslated ``a`` (what translating must beat), and
  ``label_preservation_ab_ceiling``, its accuracy on B's real test images.
- ``fcd_b``: the Fréchet distance between judge B's features of ``G(a)``
  and of B's real test images (``fcd_b_untranslated``: of ``a`` itself).
- ``cycle_l1_a``: ``mean |F(G(a)) - a|`` in the networks' [-1, 1] range.

and symmetrically for ``ba`` (``fcd_a``, ``cycle_l1_b``); ``cycle_l1`` is
the mean of the two cycle errors. Images enter and leave as [0, 1].
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcore import parallel
from dlcore.cyclegan.state import (CycleGanState, translate_ab,
                                               translate_ba)
from dlcore.adversarial.fcd import Judge, frechet_distance
from dlcore.data import Split

DIRECTIONS = {"ab": (translate_ab, translate_ba),
              "ba": (translate_ba, translate_ab)}


def _round_trip(forward, backward):
  """``(state, x [B, ...] in [0, 1]) -> (forward(x), backward(forward(x)))`` in [0, 1]."""
  def run(state: CycleGanState, images: jax.Array):
    fake = forward(state, images * 2.0 - 1.0)
    return (fake + 1.0) / 2.0, (backward(state, fake) + 1.0) / 2.0
  return jax.jit(run)


class TranslationQuality:
  """``quality(state)``: the measures of the module docstring on both test sets."""

  def __init__(self, judge_a: Judge, judge_b: Judge, test_a: Split,
               test_b: Split, batch_size: int = 256):
    self.judges = {"a": judge_a, "b": judge_b}
    self.tests = {"a": test_a, "b": test_b}
    self.real_features = {"a": judge_a.features(test_a.images),
                          "b": judge_b.features(test_b.images)}
    self.batch_size = batch_size
    self._round_trips = {d: _round_trip(*fns) for d, fns in DIRECTIONS.items()}

  def translate(self, state: CycleGanState, direction: str,
                images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(translated, reconstructed)`` of ``images`` ``[N, H, W, C]`` in [0, 1], in padded batches."""
    fakes, reconstructions = [], []
    for start in range(0, len(images), self.batch_size):
      chunk = images[start:start + self.batch_size]
      padded = np.zeros((self.batch_size, *chunk.shape[1:]), np.float32)
      padded[:len(chunk)] = chunk
      fake, rec = parallel.to_host(self._round_trips[direction](
          state, jnp.asarray(padded)))
      fakes.append(fake[:len(chunk)])
      reconstructions.append(rec[:len(chunk)])
    return np.concatenate(fakes), np.concatenate(reconstructions)

  def measure(self, state: CycleGanState, direction: str) -> dict[str, float]:
    """One direction's measures: for ``"ab"``, ``label_preservation_ab``, ``fcd_b``, ``cycle_l1_a``."""
    source, target = direction
    test, judge = self.tests[source], self.judges[target]
    fake, rec = self.translate(state, direction, test.images)
    return {f"label_preservation_{direction}": judge.accuracy(fake, test.labels),
            f"fcd_{target}": frechet_distance(self.real_features[target],
                                              judge.features(fake)),
            f"cycle_l1_{source}": float(2.0 * np.mean(np.abs(rec - test.images)))}

  def __call__(self, state: CycleGanState) -> dict[str, float]:
    measures = {}
    for direction in DIRECTIONS:
      measures.update(self.measure(state, direction))
    measures["cycle_l1"] = (measures["cycle_l1_a"] + measures["cycle_l1_b"]) / 2
    return measures

  def references(self) -> dict[str, float]:
    """Baselines (untranslated sources) and ceilings (real targets) of each direction."""
    references = {}
    for direction in DIRECTIONS:
      source, target = direction
      judge, test = self.judges[target], self.tests[source]
      references.update({
          f"label_preservation_{direction}_baseline": judge.accuracy(
              test.images, test.labels),
          f"label_preservation_{direction}_ceiling": judge.accuracy(
              self.tests[target].images, self.tests[target].labels),
          f"fcd_{target}_untranslated": frechet_distance(
              self.real_features[target], judge.features(test.images))})
    return references

  def grid(self, state: CycleGanState, direction: str,
           count: int = 10) -> np.ndarray:
    """``[3 count, H, W, C]`` in [0, 1]: rows of sources, translations, reconstructions."""
    source = self.tests[direction[0]].images[:count]
    fake, rec = self.translate(state, direction, source)
    return np.concatenate([source, fake, rec])

  def samples(self, state: CycleGanState) -> np.ndarray:
    """Both directions' grids stacked: six rows of ``count`` images."""
    return np.concatenate([self.grid(state, d) for d in DIRECTIONS])


def summarize(first: dict[str, Any], last: dict[str, Any],
              references: dict[str, float]) -> dict[str, Any]:
  """The final measures, each with its value before training as ``NAME_initial``."""
  names = [n for n in first if n != "step"]
  return {**{n: last[n] for n in names},
          **{f"{n}_initial": first[n] for n in names}, **references}
