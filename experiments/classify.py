"""Train an image classifier and report its test accuracy.

Defaults train the Flax MNIST CNN on the embedded ``digits`` dataset,
data-parallel on every local device (``--devices``, ``--parallel``; a
multi-host run adds ``--coordinator-address``, ``--num-processes`` and
``--process-id``); see ``--help`` for every option. Results go to
``--workdir``: metrics.jsonl, summary.json, curves.png and checkpoints/
(resume with ``--resume``).
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.supervised import ClassifyConfig, train_and_evaluate

main = cli.main_of(ClassifyConfig, train_and_evaluate, __doc__, lambda s: (
    f"test accuracy {s['test_accuracy']:.4f} (test loss {s['test_loss']:.4f}, "
    f"{s['train_seconds']:.1f} s of training)"))

if __name__ == "__main__":
  cli.run(main)
