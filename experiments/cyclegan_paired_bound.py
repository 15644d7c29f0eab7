"""What CycleGAN's B -> A generator keeps of each digit when it is trained on pairs.

CycleGAN learns F: B -> A from unpaired images. The embedded domains are
made from one dataset, so each ``digits32_photo`` training image has a
partner it never sees: the grey digit it was blended from
(``dlcore.data.digit_domains.photo_pairs``). This script trains the same
F as ``experiments/cyclegan.py`` (same shape, initialisation, optimizer,
steps and batch size, from the same options) on those pairs with the L1
loss alone, and measures it with the same code and cached judges. Its
``label_preservation_ba`` bounds what that network and budget can keep;
the gap to the unpaired run is the unpaired objective's.

  python experiments/cyclegan_paired_bound.py   # -> runs/cyclegan_paired_bound

writes ``summary.json`` (``label_preservation_ba``, ``fcd_a`` and their
untranslated baseline and real-target ceiling) and
``translation_ba.png`` (rows: photo digits, their paired-F translation).
Only the embedded default domains have pairs; the other options are
``experiments/cyclegan.py``'s.
"""

import dataclasses
import time

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from dlcore import files, plots
from dlcore.config import experiment_dict, field, parse_args, validate
from dlcore.cyclegan import (CycleGanConfig, CycleGanState,
                             create_cyclegan_state)
from dlcore.cyclegan.quality import TranslationQuality
from dlcore.cyclegan.train import domain_judge, load_domains, plan
from dlcore.data import Split, train_batches
from dlcore.data.digit_domains import photo_pairs
from dlcore.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PairedBoundConfig(CycleGanConfig):
  """``experiments/cyclegan.py``'s options, F's shape and training among them."""
  workdir: str = field("runs/cyclegan_paired_bound", "where summary.json and "
                       "the grid go")


def paired_step(state, photos: jax.Array, digits: jax.Array):
  """One Adam step of F on ``mean |F(photos) - digits|`` (both ``[B, H, W, C]`` in [-1, 1])."""
  def l1(params):
    return jnp.mean(jnp.abs(state.apply_fn({"params": params}, photos)
                            - digits))
  loss, grads = jax.value_and_grad(l1)(state.params)
  return state.apply_gradients(grads=grads), loss


def train_paired_generator(config: CycleGanConfig, tx) -> CycleGanState:
  """``experiments/cyclegan.py``'s initial state, its F trained on ``photo_pairs("train")``.

  The state starts from the key ``dlcore.experiment.fit`` gives
  ``experiments/cyclegan.py``'s initialisation; ``tx`` is its optimizer.
  """
  photos, digits, _ = photo_pairs("train")
  scale = lambda images: images.astype(np.float32) / 127.5 - 1.0
  photos, digits = scale(photos), scale(digits)
  init_key = jax.random.split(jax.random.PRNGKey(config.seed), 4)[0]
  state = create_cyclegan_state(config.spec, photos.shape[1:], init_key,
                                tx=tx)
  f = state.generator_ba
  step = jax.jit(paired_step, donate_argnums=0)
  batches = train_batches(Split(photos, np.arange(len(photos))),
                          config.batch_size, config.seed)
  for _, batch in zip(tqdm(range(config.steps), desc="paired F"), batches):
    f, _ = step(f, batch["image"], digits[batch["label"]])
  return state.replace(generator_ba=f)


def main(argv=None) -> dict:
  config = parse_args(PairedBoundConfig, __doc__, argv)
  validate(config)
  default = PairedBoundConfig()
  if (config.domain_a, config.domain_b) != (default.domain_a,
                                            default.domain_b):
    raise ConfigError(
        f"only the embedded domains {default.domain_a} and "
        f"{default.domain_b} have pairs; leave option domain_a and option "
        "domain_b at their defaults")
  a, b = load_domains(config)
  run = plan(config, a, b)  # experiments/cyclegan.py's checks, before any write.
  workdir = files.prepare_workdir(config.workdir)
  quality = TranslationQuality(domain_judge(a, config.domain_a, config),
                               domain_judge(b, config.domain_b, config),
                               a.test, b.test, config.eval_batch_size)
  start = time.perf_counter()
  state = train_paired_generator(config, run.optimizers["optimizer"])
  seconds = time.perf_counter() - start
  measures = {**quality.measure(state, "ba"), **quality.references()}
  summary = {name: value for name, value in measures.items()
             if name.startswith(("label_preservation_ba", "fcd_a"))}
  summary.update(steps=config.steps, train_seconds=seconds,
                 config=experiment_dict(config))
  files.write_json(workdir / "summary.json", summary)
  plots.image_grid(quality.grid(state, "ba")[:20],  # Sources, translations.
                   workdir / "translation_ba.png")
  print(f"paired F: label preservation B->A "
        f"{summary['label_preservation_ba']:.3f} (untranslated "
        f"{summary['label_preservation_ba_baseline']:.3f}, real A "
        f"{summary['label_preservation_ba_ceiling']:.3f}); fcd_a "
        f"{summary['fcd_a']:.2f} after {config.steps} steps -> {workdir}")
  return summary


if __name__ == "__main__":
  cli.run(main)
