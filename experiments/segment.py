"""Train a fully convolutional network for semantic segmentation and report its test mIoU.

Defaults train a U-Net on the embedded ``digit_canvases`` (32x32 canvases of
UCI digits, 11 classes), data-parallel on every local device; ``--model
fcn`` trains the FCN, ``--dataset`` takes a TFDS dataset with a
``segmentation_mask`` feature or an .npz file with masks ``y_*`` ``[N, H,
W]``. See ``--help`` for every option. Results go to ``--workdir``:
metrics.jsonl, summary.json, curves.png, samples_*.png (images, ground
truth, predictions), tensorboard/ and checkpoints/ (resume with
``--resume``).
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.segmentation import SegmentConfig, train_and_evaluate

main = cli.main_of(SegmentConfig, train_and_evaluate, __doc__, lambda s: (
    f"test mIoU {s['test_miou']:.4f} (pixel accuracy "
    f"{s['test_pixel_accuracy']:.4f}, {s['train_seconds']:.1f} s of "
    "training)"))

if __name__ == "__main__":
  cli.run(main)
