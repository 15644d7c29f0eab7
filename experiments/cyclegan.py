"""Unpaired image-to-image translation with CycleGAN, measured by what it keeps.

Defaults translate between the embedded digits32 (grey digits) and
digits32_photo (digits blended onto photo patches, MNIST-M style); any
dataset the loader takes can be a domain (--domain-a, --domain-b). Results
go to --workdir: metrics.jsonl, summary.json (label_preservation_ab/_ba
with their baselines and ceilings, fcd_a/_b with the untrained values,
cycle_l1), translation_ab.png and translation_ba.png (source, translated,
reconstructed rows), samples_XXXXXX.png, curves.png, TensorBoard events and
checkpoints/ (resume exactly, image pools included, with --resume).
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.cyclegan import CycleGanConfig, train_and_evaluate

main = cli.main_of(CycleGanConfig, train_and_evaluate, __doc__, lambda s: (
    f"label preservation A->B {s['label_preservation_ab']:.3f} "
    f"(untranslated {s['label_preservation_ab_baseline']:.3f}), "
    f"B->A {s['label_preservation_ba']:.3f} "
    f"(untranslated {s['label_preservation_ba_baseline']:.3f}); "
    f"fcd_b {s['fcd_b']:.2f} (untrained {s['fcd_b_initial']:.2f}), "
    f"fcd_a {s['fcd_a']:.2f} (untrained {s['fcd_a_initial']:.2f}); "
    f"cycle_l1 {s['cycle_l1']:.3f} (untrained {s['cycle_l1_initial']:.3f}) "
    f"after {s['steps']} steps ({s['train_seconds']:.1f} s of training)"))

if __name__ == "__main__":
  cli.run(main)
