"""Does pretraining on digits 0-4 help learning 5-9 from K images per class?

One command::

  python experiments/transfer_study.py --out runs/transfer

makes the 28x28 MNIST-format stand-in (``make_mnist_like_npz.py``) when
``--dataset`` does not exist, pretrains the Flax MNIST CNN on classes 0-4
(``--pretrain-epochs``), then for every K in ``--ks`` (0: every training
image) and every seed trains on classes 5-9 with K images per class:

- ``scratch``: the CNN from a fresh initialisation;
- ``probe``: the pretrained backbone frozen, a fresh head trained (a linear
  probe on the 256-d features);
- ``finetune``: the pretrained backbone, a fresh head, everything trained
  (the backbone at ``--backbone-lr-mult`` times the learning rate).

Every method at a given K trains for the same ``--steps`` steps (batches of
``min(--batch-size, 5 K)`` images, Adam, cosine decay from ``--lr``,
optionally ``--shift`` augmentation) and is
scored on all test images of classes 5-9. The K-shot subset depends on the
seed (``--train-per-class``), the same for the three methods. Results go to
``--out``: ``transfer.json`` (one record per K, method and seed, written as
they finish, so a rerun skips them), ``transfer.md`` (mean +- std over the
seeds, and the fine-tuning gain over scratch) and ``transfer.png`` (accuracy
against K, log scale). Each run's workdir is kept under ``--out/runs``.
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np

from dlcore import files
from dlcore.optim import OptimizerConfig
from dlcore.supervised import (ClassifyConfig, FinetuneConfig, finetune,
                               train_and_evaluate)

METHODS = ("scratch", "probe", "finetune")
SOURCE, TARGET = "0,1,2,3,4", "5,6,7,8,9"
BACKBONE = "(conv1|conv2|dense)/.*"  # Every CNN module but the head.


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default="runs/transfer", help="output folder")
  parser.add_argument("--dataset", default="digits28.npz",
                      help="the 28x28 npz (made when missing)")
  parser.add_argument("--ks", default="1,5,10,25,0",
                      help="training images per class (0: all)")
  parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--steps", type=int, default=200,
                      help="training steps of every target run")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--lr", type=float, default=3e-3, help="peak Adam lr")
  parser.add_argument("--backbone-lr-mult", type=float, default=1.0,
                      help="fine-tuning's backbone lr multiplier")
  parser.add_argument("--pretrain-epochs", type=int, default=10)
  parser.add_argument("--shift", type=int, default=0,
                      help="random translations (pixels) of the target "
                      "runs' training images")
  return parser.parse_args()


def _pretrain(args, out: pathlib.Path) -> pathlib.Path:
  workdir = out / "runs" / f"pretrain-{args.pretrain_epochs}ep"
  if not (workdir / "summary.json").exists():
    summary = train_and_evaluate(ClassifyConfig(
        dataset=args.dataset, classes=SOURCE, epochs=args.pretrain_epochs,
        batch_size=args.batch_size, workdir=str(workdir),
        optimizer=OptimizerConfig(name="adam", lr=args.lr, schedule="cosine")))
    print(f"pretrained on {SOURCE}: test accuracy "
          f"{summary['test_accuracy']:.4f}", flush=True)
  return workdir


def _expected(args, k: int, method: str, seed: int) -> dict:
  """The identity of a record: what a rerun with these options would compute."""
  return {"k": k, "method": method, "seed": seed, "steps": _steps(args, k),
          "backbone_lr_mult": (args.backbone_lr_mult if method == "finetune"
                               else None),
          "pretrain_epochs": (args.pretrain_epochs if method != "scratch"
                              else None), "shift": args.shift}


def _batch_size(args, k: int) -> int:
  return min(args.batch_size, 5 * k) if k else args.batch_size


def _steps(args, k: int) -> int:
  """``--steps`` rounded up to whole epochs of the K-shot training set."""
  per_epoch = ((5 * k if k else _num_target_train(args.dataset))
               // _batch_size(args, k))
  return math.ceil(args.steps / per_epoch) * per_epoch


def _run(args, out, source, expected: dict) -> dict:
  k, method, seed, steps = (expected[n] for n in ("k", "method", "seed",
                                                  "steps"))
  name = "-".join(f"{n}{v}" for n, v in expected.items() if v is not None)
  workdir = out / "runs" / name
  shutil.rmtree(workdir, ignore_errors=True)  # An interrupted earlier try.
  batch = _batch_size(args, k)
  common = dict(
      dataset=args.dataset, classes=TARGET, train_per_class=k, seed=seed,
      batch_size=batch, epochs=steps // ((5 * k if k else _num_target_train(
          args.dataset)) // batch), log_every=steps, eval_every=steps,
      checkpoint_every=steps, workdir=str(workdir), shift=args.shift,
      optimizer=OptimizerConfig(name="adam", lr=args.lr, schedule="cosine"))
  if method == "scratch":
    summary = train_and_evaluate(ClassifyConfig(**common))
  else:
    mult = expected["backbone_lr_mult"]
    summary = finetune(FinetuneConfig(
        **common, init_from=str(source),
        freeze=(BACKBONE,) if method == "probe" else (),
        lr_mult=(f"{BACKBONE}={mult}",) if mult not in (None, 1) else ()))
  return {**expected, "batch_size": batch,
          "test_accuracy": summary["test_accuracy"],
          "train_seconds": summary["train_seconds"]}


def _num_target_train(dataset: str) -> int:
  with np.load(dataset) as npz:
    return int(np.isin(npz["y_train"], [5, 6, 7, 8, 9]).sum())


def _table(records: list[dict], ks: list[int], methods: list[str],
           all_k: int) -> str:
  """Markdown: accuracy (%) mean +- std over seeds per K and method, and the gain."""
  def accuracies(k, method):
    return np.array([100 * r["test_accuracy"] for r in sorted(
        records, key=lambda r: r["seed"]) if r["k"] == k
                      and r["method"] == method])

  gain = "scratch" in methods and "finetune" in methods
  head = ["K per class"] + list(methods) + (
      ["fine-tune - scratch"] if gain else [])
  lines = ["| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  for k in ks:
    row = [str(k) if k else f"all (~{all_k})"]
    for method in methods:
      a = accuracies(k, method)
      row.append(f"{a.mean():.1f} ± {a.std(ddof=1) if len(a) > 1 else 0:.1f}"
                 if len(a) else "")
    if gain:
      a, b = accuracies(k, "finetune"), accuracies(k, "scratch")
      n = min(len(a), len(b))
      if n:
        d = a[:n] - b[:n]  # Paired by seed: the same K-shot subset.
        row.append(f"{d.mean():+.1f} ± {d.std(ddof=1) if n > 1 else 0:.1f}")
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"


def _plot(records, ks, methods, all_k, path):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(6, 4))
  for method in methods:
    xs, means, stds = [], [], []
    for k in ks:
      a = [100 * r["test_accuracy"] for r in records
           if r["k"] == k and r["method"] == method]
      if a:
        xs.append(k or all_k)
        means.append(np.mean(a))
        stds.append(np.std(a, ddof=1) if len(a) > 1 else 0)
    ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
  ax.set_xscale("log")
  ax.set_xlabel("training images per class (K; the last point: all)")
  ax.set_ylabel("test accuracy on digits 5-9 (%)")
  ax.grid(True, alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main() -> None:
  args = _parse()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(out / "xla-cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  if not os.path.exists(args.dataset):
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                 "make_mnist_like_npz.py"),
                    "--out", args.dataset], check=True)
  ks = [int(k) for k in args.ks.split(",")]
  methods = args.methods.split(",")
  source = _pretrain(args, out) if set(methods) - {"scratch"} else None
  results = out / "transfer.json"
  records = json.loads(results.read_text()) if results.exists() else []
  identity = lambda r: tuple(r.get(n, 0) for n in (
      "k", "method", "seed", "steps", "backbone_lr_mult", "pretrain_epochs",
      "shift"))
  wanted = [_expected(args, k, method, seed)
            for k in ks for seed in range(args.seeds) for method in methods]
  for expected in wanted:
    if identity(expected) not in {identity(r) for r in records}:
      records.append(_run(args, out, source, expected))
      files.write_json(results, records)
      print(json.dumps(records[-1]), flush=True)
  mine = [r for r in records
          if identity(r) in {identity(e) for e in wanted}]
  all_k = _num_target_train(args.dataset) // 5
  (out / "transfer.md").write_text(_table(mine, ks, methods, all_k))
  _plot(mine, ks, methods, all_k, out / "transfer.png")
  print((out / "transfer.md").read_text())


if __name__ == "__main__":
  main()
