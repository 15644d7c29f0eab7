"""Train an image classifier and report its test accuracy.

Defaults train the Flax MNIST CNN on the embedded ``digits`` dataset,
data-parallel on every local device (``--devices``, ``--parallel``; a
multi-host run adds ``--coordinator-address``, ``--num-processes`` and
``--process-id``); see ``--help`` for every option. Results go to
``--workdir``: metrics.jsonl, summary.json, curves.png and checkpoints/
(resume with ``--resume``).
"""

from dlcore import cli, parallel
from dlcore.config import parse_args
from dlcore.supervised import ClassifyConfig, train_and_evaluate


def main(argv=None) -> dict:
  config = parse_args(ClassifyConfig, __doc__, argv)
  parallel.initialize_distributed(config)
  summary = train_and_evaluate(config, config.workdir)
  print(f"test accuracy {summary['test_accuracy']:.4f} "
        f"(test loss {summary['test_loss']:.4f}, "
        f"{summary['train_seconds']:.1f} s of training) -> {config.workdir}")
  return summary


if __name__ == "__main__":
  cli.run(main)
