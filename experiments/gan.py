"""Train a GAN and measure its samples with a Fréchet classifier distance.

Defaults train an unconditional DCGAN with the non-saturating loss on the
embedded ``digits`` dataset; see ``--help`` for every option. Results go to
``--workdir``: metrics.jsonl, summary.json (fcd, conditional_accuracy),
samples_XXXXXX.png, samples_final.png, curves.png and checkpoints/ (resume
with ``--resume``).
"""

from dlcore import cli, parallel
from dlcore.adversarial import GanConfig, train_gan
from dlcore.config import parse_args


def main(argv=None) -> dict:
  config = parse_args(GanConfig, __doc__, argv)
  parallel.initialize_distributed(config)
  summary = train_gan(config, config.workdir)
  quality = "" if "fcd" not in summary else (
      f"fcd {summary['fcd']:.2f} (untrained generator "
      f"{summary['fcd_initial']:.2f})")
  if "conditional_accuracy" in summary:
    quality += f", conditional accuracy {summary['conditional_accuracy']:.3f}"
  print(f"{quality} after {summary['steps']} steps "
        f"({summary['train_seconds']:.1f} s of training) -> {config.workdir}")
  return summary


if __name__ == "__main__":
  cli.run(main)
