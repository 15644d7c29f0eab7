"""Train an image classifier and report its test accuracy.

Defaults train the Flax MNIST CNN on the embedded ``digits`` dataset; see
``--help`` for every option. Results go to ``--workdir``: metrics.jsonl,
summary.json, curves.png and checkpoints/ (resume with ``--resume``).
"""

from dlcore import cli
from dlcore.config import parse_args
from dlcore.supervised import ClassifyConfig, train_and_evaluate


def main(argv=None) -> dict:
  config = parse_args(ClassifyConfig, __doc__, argv)
  summary = train_and_evaluate(config, config.workdir)
  print(f"test accuracy {summary['test_accuracy']:.4f} "
        f"(test loss {summary['test_loss']:.4f}, "
        f"{summary['train_seconds']:.1f} s of training) -> {config.workdir}")
  return summary


if __name__ == "__main__":
  cli.run(main)
