"""Training CycleGAN between two image datasets: ``train_and_evaluate(config)``.

Writes into ``config.workdir`` what ``dlcore.loop`` writes
(``metrics.jsonl``, ``tensorboard/``, ``model.txt``, ``samples_XXXXXX.png``
grids of both directions at the sample cadence, ``checkpoints/`` holding
the four networks, their optimizers and both image pools), plus
``curves.png``, ``translation_ab.png`` and ``translation_ba.png`` (rows:
source, translated, reconstructed) and ``summary.json``: the measures of
``quality.TranslationQuality`` after training, before it (``*_initial``)
and their baselines and ceilings. The two classifiers behind them are
trained once on real images of each domain and cached, keyed to the
dataset, in ``classifier_dir`` (default ``workdir/classifiers``).

Each domain is shuffled independently (``UnpairedStream``): step ``s``
takes batch ``s`` of ``train_batches`` of domain A with the seed
``SeedSequence([seed, 0])`` and of domain B with ``SeedSequence([seed,
1])``, so the batches, like the step keys, depend only on ``(seed, s)``,
and a resumed run repeats the uninterrupted one exactly.
"""

import dataclasses
import pathlib
from typing import Any, Iterable, Iterator

import numpy as np

from dlcore import experiment, parallel, plots
from dlcore.adversarial import fcd
from dlcore.config import validate
from dlcore.cyclegan.config import CycleGanConfig
from dlcore.cyclegan.objective import cyclegan_objective
from dlcore.cyclegan.quality import TranslationQuality, summarize
from dlcore.data import (Dataset, Split, load_dataset, steps_per_epoch,
                         train_batches)
from dlcore.errors import ConfigError

SAMPLES = 10  # Images of each domain in a sample grid.


def _as_rgb(data: Dataset) -> Dataset:
  rgb = lambda split: Split(np.repeat(split.images, 3, axis=-1), split.labels)
  return Dataset(f"{data.name}_rgb", rgb(data.train), rgb(data.test),
                 data.num_classes)


def load_domains(config: CycleGanConfig) -> tuple[Dataset, Dataset]:
  """Both domains with equal image shapes (else ``ConfigError``, naming the fix)."""
  a = load_dataset(config.domain_a, config.data_dir)
  b = load_dataset(config.domain_b, config.data_dir)
  (ha, wa, ca), (hb, wb, cb) = a.image_shape, b.image_shape
  if (ha, wa) != (hb, wb):
    raise ConfigError(f"domain A has {ha}x{wa} images and domain B {hb}x{wb}; "
                      "CycleGAN needs images of one size in both domains")
  if ca != cb:
    if not (config.grey_to_rgb and {ca, cb} == {1, 3}):
      raise ConfigError(
          f"domain A has {ca} channel(s) and domain B {cb}; pass option "
          "grey_to_rgb to repeat a grey domain's channel (1 and 3 only), or "
          "choose domains with equal channels")
    a, b = (_as_rgb(a), b) if ca == 1 else (a, _as_rgb(b))
  return a, b


def plan(config: CycleGanConfig, a: Dataset, b: Dataset) -> experiment.Plan:
  """The run's plan, once ``config`` fits the domains (else ``ConfigError``)."""
  for data in (a, b):
    if data.num_classes == 0:
      raise ConfigError(f"domain {data.name!r} has no labels; measuring what "
                        "a translation keeps needs class labels")
    steps_per_epoch(len(data.train), config.batch_size)
  try:
    config.spec.check(a.image_shape)
  except ValueError as e:
    raise ConfigError(f"{e}; change option g_downsamplings or option "
                      "d_layers, or choose other domains") from None
  return experiment.plan(
      config, num_steps=config.steps, batch_size=config.batch_size,
      optimizers={"optimizer": (config.optimizer, None, config.steps)})


def domain_judge(data: Dataset, name: str, config: CycleGanConfig) -> fcd.Judge:
  """``data``'s classifier, cached (keyed to the images) in ``classifier_dir``."""
  cache = pathlib.Path(config.classifier_dir or
                       pathlib.Path(config.workdir) / "classifiers")
  dataset = name
  if data.name.endswith("_rgb"):  # Train it on the images as translated.
    directory = fcd.judge_directory(data, cache)
    dataset = str(directory.with_suffix(".npz"))
    directory.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dataset, x_train=data.train.images, y_train=data.train.labels,
             x_test=data.test.images, y_test=data.test.labels)
  return fcd.load_or_train_judge(dataset, data, cache,
                                 data_dir=config.data_dir,
                                 epochs=config.classifier_epochs,
                                 seed=config.seed)


def _seed(seed: int, domain: int) -> int:
  return int(np.random.SeedSequence([seed, domain]).generate_state(1)[0])


@dataclasses.dataclass(frozen=True)
class UnpairedStream:
  """Step ``s``'s ``{"image_a", "image_b"}`` in [-1, 1], each domain shuffled by its own seed."""
  a: Split
  b: Split
  batch_size: int
  seed: int

  def batches(self, start: int) -> Iterator[dict[str, np.ndarray]]:
    for batch_a, batch_b in zip(
        train_batches(self.a, self.batch_size, _seed(self.seed, 0), start),
        train_batches(self.b, self.batch_size, _seed(self.seed, 1), start)):
      yield {"image_a": batch_a["image"] * 2.0 - 1.0,
             "image_b": batch_b["image"] * 2.0 - 1.0}

  def test_batches(self) -> Iterable[dict[str, np.ndarray]]:
    return ()  # TranslationQuality measures the test images.


def train_and_evaluate(config: CycleGanConfig) -> dict[str, Any]:
  """Trains CycleGAN as ``config`` says; returns the summary (also ``summary.json``)."""
  validate(config)
  a, b = load_domains(config)
  run = plan(config, a, b)  # Before anything is written.
  quality = TranslationQuality(
      domain_judge(a, config.domain_a, config),
      domain_judge(b, config.domain_b, config),
      a.test, b.test, config.eval_batch_size)
  objective = cyclegan_objective(
      config.spec, a.image_shape, tx=run.optimizers["optimizer"],
      pool_size=config.pool_size, loss=config.loss,
      cycle_weight=config.cycle_weight,
      identity_weight=config.identity_weight, dtype=np.dtype(config.dtype),
      sample_a=a.test.images[:SAMPLES], sample_b=b.test.images[:SAMPLES])
  state, history = experiment.fit(
      objective, UnpairedStream(a.train, b.train, config.batch_size,
                                config.seed), config, run,
      evaluate_fn=quality, evaluate_first=True,
      desc=f"CycleGAN {a.name} <-> {b.name}")
  summary = summarize(history.records[0], history.last, quality.references())
  summary.update(
      {f"classifier_{d}_test_accuracy": quality.judges[d].test_accuracy
       for d in "ab"})
  if parallel.is_main_process():
    workdir = pathlib.Path(config.workdir)
    for direction in ("ab", "ba"):
      plots.image_grid(quality.grid(state, direction),
                       workdir / f"translation_{direction}.png")
  return experiment.finish(config, history, summary, panels={
      "generators": ["train_g_gan_ab", "train_g_gan_ba"],
      "cycle": ["train_cycle_a", "train_cycle_b", "cycle_l1"],
      "discriminators": ["train_d_a_loss", "train_d_b_loss"],
      "label preservation": ["label_preservation_ab", "label_preservation_ba"],
      "fcd": ["fcd_a", "fcd_b"]})
