"""Training CycleGAN between two image datasets: ``train_cyclegan(config, workdir)``.

Writes into ``workdir`` what ``dlcore.loop`` writes (``metrics.jsonl``,
``tensorboard/``, ``model.txt``, ``samples_XXXXXX.png`` grids of both
directions at the sample cadence, ``checkpoints/`` holding the four
networks, their optimizers and both image pools), plus ``curves.png``,
``translation_ab.png`` and ``translation_ba.png`` (rows: source,
translated, reconstructed) and ``summary.json``: the measures of
``quality.TranslationQuality`` after training, before it (``*_initial``)
and their baselines and ceilings. The two classifiers behind them are
trained once on real images of each domain and cached, keyed to the
dataset, in ``classifier_dir`` (default ``workdir/classifiers``).

Each domain is shuffled independently: step ``s`` takes batch ``s`` of
``train_batches`` of domain A with the seed ``SeedSequence([seed, 0])`` and
of domain B with ``SeedSequence([seed, 1])``, so the batches, like the
step keys, depend only on ``(seed, s)``, and a resumed run repeats the
uninterrupted one exactly.
"""

import dataclasses
import pathlib
from typing import Any

import jax
import numpy as np

from dlcore import experiment, files, optim, parallel, plots
from dlcore.adversarial import fcd
from dlcore.adversarial.cyclegan.objective import cyclegan_objective
from dlcore.adversarial.cyclegan.quality import (TranslationQuality,
                                                 summarize)
from dlcore.adversarial.cyclegan.state import NetworkSpec
from dlcore.adversarial.losses import LOSSES
from dlcore.config import SEED_RANGE, STEPS_RANGE, experiment_dict, field
from dlcore.data import (Dataset, Split, load_dataset, prefetch,
                         steps_per_epoch, train_batches)
from dlcore.errors import ConfigError
from dlcore.loop import LoopConfig, train

# CycleGAN's step has no gradient penalty, so WGAN-GP is not offered.
CYCLEGAN_LOSSES = tuple(name for name, spec in LOSSES.items()
                        if not spec.gradient_penalty)
CYCLEGAN_OPTIMIZER = optim.OptimizerConfig(
    name="adam", lr=2e-4, b1=0.5, schedule="constant_then_linear")


@dataclasses.dataclass(frozen=True)
class CycleGanConfig(parallel.ParallelConfig, LoopConfig):
  """Options of ``experiments/cyclegan.py`` (defaults: grey digits <-> digits on photos)."""
  domain_a: str = field("digits32", "domain A: digits32 or digits32_photo "
                        "(embedded), digits, a TFDS name such as mnist, or "
                        "an .npz file")
  domain_b: str = field("digits32_photo", "domain B, as option domain_a")
  grey_to_rgb: bool = field(False, "repeat the channel of a grey domain "
                            "three times when the other domain is RGB")
  data_dir: str | None = field(None, "TFDS data directory (default "
                               "~/tensorflow_datasets)")
  steps: int = field(1500, "training steps (each: both generators, then both "
                     "discriminators)", valid=STEPS_RANGE)
  batch_size: int = field(4, "images of each domain per step (split evenly "
                          "over the devices)", valid="[1, inf)")
  loss: str = field("least-squares", "adversarial loss",
                    choices=CYCLEGAN_LOSSES)
  cycle_weight: float = field(10.0, "weight lambda of the cycle-consistency "
                              "L1 losses", valid="[0, inf)")
  identity_weight: float = field(0.5, "weight of the identity L1 losses as "
                                 "a multiple of lambda (0 = off)",
                                 valid="[0, inf)")
  pool_size: int = field(50, "earlier fakes kept per domain for the "
                         "discriminators (0 = none)", valid="[0, inf)")
  g_width: int = field(8, "generator width (filters of its first "
                       "convolution)", valid="[1, inf)")
  g_blocks: int = field(2, "residual blocks of the generators",
                        valid="[0, inf)")
  g_downsamplings: int = field(2, "stride-2 down-samplings of the "
                               "generators (image sides must divide by "
                               "2^this)", valid="[0, inf)")
  d_width: int = field(16, "discriminator width", valid="[1, inf)")
  d_layers: int = field(2, "stride-2 layers of the PatchGAN discriminators "
                        "(3: the paper's 70x70 patches)", valid="[1, inf)")
  optimizer: optim.OptimizerConfig = field(
      CYCLEGAN_OPTIMIZER, "the optimizer of each of the four networks")
  dtype: str = field("float32", "computation dtype; parameters and "
                     "optimizer state stay float32", choices=experiment.DTYPES)
  classifier_epochs: int = field(10, "epochs of each domain's classifier",
                                 valid="[1, inf)")
  classifier_dir: str | None = field(None, "where the domains' classifiers "
                                     "are trained once and cached (default "
                                     "WORKDIR/classifiers)")
  eval_batch_size: int = field(256, "images per translation batch when "
                               "measuring", valid="[1, inf)")
  seed: int = field(0, "seed of initialisation, shuffling and the pools",
                    valid=SEED_RANGE)
  log_every: int = field(50, "steps between metrics records (each the mean "
                         "over the steps since the last)")
  eval_every: int = field(250, "steps between measurements on the test "
                          "images (0: at the end only)")
  sample_every: int = field(500, "steps between translation grids (0: at "
                            "the end only)")
  checkpoint_every: int = field(500, "steps between checkpoints (0: at the "
                                "end only; the last step is always saved)")
  workdir: str = field("runs/cyclegan", "where metrics, grids and "
                       "checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")

  @property
  def spec(self) -> NetworkSpec:
    return NetworkSpec(self.g_width, self.g_blocks, self.g_downsamplings,
                       self.d_width, self.d_layers)


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


def check(config: CycleGanConfig, a: Dataset, b: Dataset) -> jax.sharding.Mesh:
  """The device mesh, once ``config`` fits the domains (else ``ConfigError``)."""
  if config.loss not in CYCLEGAN_LOSSES:
    raise ConfigError(f"unknown loss {config.loss!r} for CycleGAN; choose one "
                      f"of {', '.join(CYCLEGAN_LOSSES)}")
  experiment.check_options(config)
  optim.check_optimizer(config.optimizer, total_steps=config.steps)
  for data in (a, b):
    if data.num_classes == 0:
      raise ConfigError(f"domain {data.name!r} has no labels; measuring what "
                        "a translation keeps needs class labels")
    steps_per_epoch(len(data.train), config.batch_size)
  config.spec.check(a.image_shape)
  mesh = parallel.data_mesh(config.devices)
  parallel.check_divisible(config.batch_size, mesh)
  return mesh


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


def unpaired_batches(a: Split, b: Split, batch_size: int, seed: int,
                     start: int = 0):
  """Step ``start``, ``start + 1``, ...'s ``{"image_a", "image_b"}`` in [-1, 1]."""
  for batch_a, batch_b in zip(
      train_batches(a, batch_size, _seed(seed, 0), start),
      train_batches(b, batch_size, _seed(seed, 1), start)):
    yield {"image_a": batch_a["image"] * 2.0 - 1.0,
           "image_b": batch_b["image"] * 2.0 - 1.0}


def train_cyclegan(config: CycleGanConfig,
                   workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains CycleGAN as ``config`` says; returns the summary (also ``summary.json``)."""
  if workdir is not None:
    config = dataclasses.replace(config, workdir=str(workdir))
  a, b = load_domains(config)
  mesh = check(config, a, b)  # Before anything is written.
  workdir = files.prepare_workdir(config.workdir)
  quality = TranslationQuality(
      domain_judge(a, config.domain_a, config),
      domain_judge(b, config.domain_b, config),
      a.test, b.test, config.eval_batch_size)
  objective = cyclegan_objective(
      config.spec, a.image_shape,
      tx=optim.create_optimizer(config.optimizer, config.steps),
      pool_size=config.pool_size, loss=config.loss,
      cycle_weight=config.cycle_weight,
      identity_weight=config.identity_weight, dtype=np.dtype(config.dtype))
  init_key, loop_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = parallel.replicate(objective.init(init_key, None), mesh)
  step_fn = parallel.wrap(objective.train_step, mesh, config.parallel,
                          donate_argnums=0)

  def batches(start: int):
    stream = unpaired_batches(a.train, b.train, config.batch_size, config.seed,
                              start)
    return prefetch((parallel.shard_batch(x, mesh) for x in stream),
                    sharding=parallel.batch_sharding(mesh))

  state, history = train(
      state, step_fn, batches, key=loop_key, num_steps=config.steps,
      workdir=workdir, every=config, evaluate=quality,
      sample=quality.samples, resume=config.resume,
      config=experiment_dict(config), evaluate_first=True,
      desc=f"CycleGAN {a.name} <-> {b.name}, {mesh.size} device(s)")
  summary = summarize(history.records[0], history.last, quality.references())
  summary.update(
      {f"classifier_{d}_test_accuracy": quality.judges[d].test_accuracy
       for d in "ab"})
  if parallel.is_main_process():
    for direction in ("ab", "ba"):
      plots.image_grid(quality.grid(state, direction),
                       workdir / f"translation_{direction}.png")
  return experiment.finish(config, history, summary, panels={
      "generators": ["train_g_gan_ab", "train_g_gan_ba"],
      "cycle": ["train_cycle_a", "train_cycle_b", "cycle_l1"],
      "discriminators": ["train_d_a_loss", "train_d_b_loss"],
      "label preservation": ["label_preservation_ab", "label_preservation_ba"],
      "fcd": ["fcd_a", "fcd_b"]})
