r"""Fine-tune a classifier from pretrained weights and report its test accuracy.

Every option of ``classify.py`` (``--epochs``, ``--batch-size``,
``--optimizer.lr``, ``--seed``, ``--model``, ``--classes``,
``--train-per-class`` ...) plus ``--init-from`` (a dlcore workdir, an Orbax
checkpoint directory or an ``.npz`` of weights), ``--reinit`` (paths kept
fresh; default the head), ``--remap``, ``--freeze`` and ``--lr-mult``; see
``--help``. Writes what ``classify.py`` writes to ``--workdir``
(metrics.jsonl, summary.json, curves.png, checkpoints/; resume with
``--resume``).

  python experiments/classify.py --dataset digits28.npz --classes 0,1,2,3,4 \
      --workdir runs/source
  python experiments/finetune.py --dataset digits28.npz --classes 5,6,7,8,9 \
      --train-per-class 10 --init-from runs/source --workdir runs/target
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.supervised import FinetuneConfig, finetune

main = cli.main_of(FinetuneConfig, finetune, __doc__, lambda s: (
    f"test accuracy {s['test_accuracy']:.4f} (test loss {s['test_loss']:.4f}, "
    f"{s['train_seconds']:.1f} s of training)"))

if __name__ == "__main__":
  cli.run(main)
