"""Train a GAN and measure its samples with a Fréchet classifier distance.

Defaults train an unconditional DCGAN with the non-saturating loss on the
embedded ``digits`` dataset; see ``--help`` for every option. Results go to
``--workdir``: metrics.jsonl, summary.json (fcd, conditional_accuracy),
samples_XXXXXX.png, samples_final.png, curves.png and checkpoints/ (resume
with ``--resume``).
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.adversarial import GanConfig, train_and_evaluate


def report(s: dict) -> str:
  quality = "" if "fcd" not in s else (
      f"fcd {s['fcd']:.2f} (untrained generator {s['fcd_initial']:.2f})")
  if "conditional_accuracy" in s:
    quality += f", conditional accuracy {s['conditional_accuracy']:.3f}"
  return (f"{quality} after {s['steps']} steps "
          f"({s['train_seconds']:.1f} s of training)")


main = cli.main_of(GanConfig, train_and_evaluate, __doc__, report)

if __name__ == "__main__":
  cli.run(main)
