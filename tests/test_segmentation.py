"""Semantic segmentation: models, loss, exact mIoU, joint augmentation, data, the script."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from conftest import run_script
from dlcore import metrics
from dlcore.data import canvases, load_segmentation_dataset
from dlcore.data.digits import NUM_TRAIN, digits_arrays
from dlcore.errors import ConfigError
from dlcore.models import FCN, UNet, create_segmenter
from dlcore.segmentation import (AugmentConfig, augment, pixel_losses,
                                 segmentation_objective)
from dlcore.segmentation.steps import eval_step
from dlcore.state import create_train_state



def small_canvases(n_train: int, n_test: int):
  """Canvases built as the embedded dataset's, from its train and test digits."""
  images, labels, ids = digits_arrays()
  digits = images[..., 0] / 255.0
  rng = np.random.default_rng(0)
  train = canvases.make_canvases(digits[:NUM_TRAIN], labels[:NUM_TRAIN],
                                 ids[:NUM_TRAIN], n_train, rng)
  test = canvases.make_canvases(digits[NUM_TRAIN:], labels[NUM_TRAIN:],
                                ids[NUM_TRAIN:], n_test, rng)
  return train, test


TINY_UNET = UNet(11, depth=2, width=4)


@functools.cache
def tiny_state():
  """``TINY_UNET``'s train state on 32x32 images (Adam), compiled once."""
  return jax.jit(lambda key: create_train_state(
      TINY_UNET, optax.adam(1e-3), jnp.zeros((1, 32, 32, 1)), key))(
          jax.random.PRNGKey(0))


@pytest.mark.parametrize("model", [FCN(11, trunk="cnn", width=4), TINY_UNET],
                         ids=["fcn", "unet"])
def test_same_parameters_segment_two_image_sizes(model):
  """Initialised once; applied to 64x64 and 96x128 images, in float32 and bfloat16."""
  if model is TINY_UNET:
    variables = {"params": tiny_state().params,
                 "batch_stats": tiny_state().batch_stats}
  else:
    variables = jax.jit(model.init)(jax.random.PRNGKey(0),
                                    jnp.zeros((1, 32, 32, 1)))
  half = model.clone(dtype=jnp.bfloat16)
  apply = jax.jit(lambda m, x: m.apply(variables, x), static_argnums=0)
  for shape in ((2, 64, 64, 1), (3, 96, 128, 1)):
    scores = apply(model, jnp.ones(shape))
    assert scores.shape == shape[:3] + (11,) and scores.dtype == jnp.float32
  halved = apply(half, jnp.ones((2, 64, 64, 1)))
  assert halved.dtype == jnp.float32  # Scores float32, computed in bfloat16:
  gap = np.max(np.abs(np.asarray(halved) - np.asarray(
      apply(model, jnp.ones((2, 64, 64, 1))))))
  assert 0 < gap < 0.1 * np.max(np.abs(np.asarray(halved)))
  with pytest.raises(ValueError, match="multiples of 4, got 64x66"):
    model.apply(variables, jnp.ones((1, 64, 66, 1)))
  with pytest.raises(ValueError, match="UNet takes images whose height and "
                     "width are multiples of 8, got 12x16"):
    create_segmenter("unet", 3, depth=3).init(jax.random.PRNGKey(0),
                                              jnp.zeros((1, 12, 16, 1)))


def test_loss_ignores_ignore_label_pixels_and_weighs_classes():
  logits = jnp.array([[[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                       [[0.0, 0.0, 3.0], [5.0, -5.0, 0.0]]]])  # [1, 2, 2, 3]
  masks = jnp.array([[[0, 1], [2, 255]]])
  log_softmax = lambda z, k: z[k] - np.log(np.sum(np.exp(z)))
  expected = [-log_softmax(np.array([2.0, 0, 0]), 0),
              -log_softmax(np.array([0, 1.0, 0]), 1),
              -log_softmax(np.array([0, 0, 3.0]), 2)]
  losses, weights = pixel_losses(logits, masks)
  np.testing.assert_allclose(np.asarray(losses).ravel()[:3], expected,
                             rtol=1e-6)
  np.testing.assert_array_equal(weights, [[[1, 1], [1, 0]]])
  losses, weights = pixel_losses(logits, masks, class_weights=(0.5, 2.0, 1.0))
  np.testing.assert_array_equal(weights, [[[0.5, 2.0], [1.0, 0]]])
  # The step's loss: sum_p w_p CE_p / sum_p w_p over the pixels not ignored.
  weighted = (0.5 * expected[0] + 2 * expected[1] + expected[2]) / 3.5
  total = jnp.sum(losses * weights) / jnp.sum(weights)
  assert float(total) == pytest.approx(weighted, rel=1e-6)
  # Changing the ignored pixel's logits changes neither loss nor gradient.
  grad = jax.jit(jax.grad(lambda z: jnp.sum(jnp.prod(jnp.stack(pixel_losses(z, masks)),
                                             0))))(logits)
  np.testing.assert_array_equal(grad[0, 1, 1], 0.0)


def test_miou_from_summed_confusion_matrix_by_hand():
  """4 classes: 3 absent from truth and predictions, 2 only predicted."""
  truth = np.array([[[0, 0, 1], [1, 1, 255]], [[0, 1, 1], [0, 0, 0]]])
  predicted = np.array([[[0, 1, 1], [1, 2, 0]], [[0, 1, 1], [0, 0, 2]]])
  # Class 0: truth at 6 pixels, 4 predicted right, 1 as 1, 1 as 2; class 1:
  # truth at 5, 4 right, 1 as 2; the ignored pixel counts nothing.
  halves = [metrics.ConfusionMatrix.of(jnp.asarray(t[None]),
                                       jnp.asarray(p[None]), 4)
            for t, p in zip(truth, predicted)]
  total = metrics.merge(metrics.merge(None, {"c": halves[0]}), {"c": halves[1]})
  np.testing.assert_array_equal(total["c"].counts, [[4, 1, 1, 0], [0, 4, 1, 0],
                                                    [0, 0, 0, 0], [0, 0, 0, 0]])
  result = metrics.compute(total)
  iou = {0: 4 / (6 + 4 - 4), 1: 4 / (5 + 5 - 4), 2: 0 / (0 + 2 - 0)}
  assert result == pytest.approx({
      "pixel_accuracy": 8 / 11, "miou": np.mean(list(iou.values())),
      **{f"iou_{k}": v for k, v in iou.items()}})
  assert "iou_3" not in result  # 0/0: no IoU, left out of the mean.
  # A padded example (mask 0) counts nothing.
  padded = metrics.ConfusionMatrix.of(jnp.asarray(truth), jnp.asarray(predicted),
                                      4, mask=jnp.array([1.0, 0.0]))
  np.testing.assert_array_equal(padded.counts, halves[0].counts)


def test_eval_step_sums_exactly_over_batches():
  rng = np.random.default_rng(0)
  images = rng.random((6, 32, 32, 1)).astype(np.float32)
  masks = rng.integers(0, 11, (6, 32, 32)).astype(np.int32)
  state = tiny_state()
  step = jax.jit(eval_step)
  whole = step(state, {"image": images, "label": masks})
  parts = None
  for rows in (slice(0, 4), slice(4, 6)):  # The last batch padded to 4.
    image = np.concatenate([images[rows], images[:4]])[:4]
    label = np.concatenate([masks[rows], masks[:4]])[:4]
    valid = np.arange(4) < len(images[rows])
    parts = metrics.merge(parts, step(state, {"image": image, "label": label,
                                              "mask": valid.astype(np.float32)}))
  np.testing.assert_array_equal(parts["confusion"].counts,
                                whole["confusion"].counts)
  assert int(whole["confusion"].counts.sum()) == 6 * 32 * 32
  assert metrics.compute(parts)["loss"] == pytest.approx(
      metrics.compute(whole)["loss"], rel=1e-6)


def test_augmentation_keeps_image_and_mask_aligned():
  rng = np.random.default_rng(0)
  images = rng.random((16, 24, 20, 1)).astype(np.float32) + 0.01
  derive = lambda x: (x[..., 0] > 0.5).astype(np.int32) + 1  # Never 0.
  config = AugmentConfig(flip=True, max_shift=4, max_zoom=2.0)
  out_images, out_masks = jax.jit(
      lambda k, x, y: augment(k, x, y, config, 255))(
          jax.random.PRNGKey(0), images, derive(images))
  out_images, out_masks = np.asarray(out_images), np.asarray(out_masks)
  inside = out_masks != 255
  np.testing.assert_array_equal(out_masks[inside], derive(out_images)[inside])
  np.testing.assert_array_equal(out_images[~inside], 0.0)  # Outside: padding.
  assert 0 < (~inside).mean() < 0.3
  assert not np.array_equal(out_images, images)
  # The identity leaves both alone.
  same = jax.jit(lambda k, x, y: augment(k, x, y, AugmentConfig(), 255))(
      jax.random.PRNGKey(0), images, derive(images))
  np.testing.assert_array_equal(same[0], images)
  np.testing.assert_array_equal(same[1], derive(images))


def test_embedded_canvases_never_share_a_source_digit(tmp_path, monkeypatch):
  monkeypatch.setattr(canvases, "NUM_CANVASES", {"train": 300, "test": 60})
  data = load_segmentation_dataset("digit_canvases", str(tmp_path))
  assert data.num_classes == canvases.NUM_CLASSES
  assert data.train.images.shape == (300, 32, 32, 1)
  assert data.test.labels.shape == (60, 32, 32)
  builder = canvases.DigitCanvases(data_dir=str(tmp_path),
                                   file_format="array_record")
  used = {}
  for split in ("train", "test"):
    source = builder.as_data_source(split)
    ids = np.concatenate([source[i]["digit_ids"] for i in range(len(source))])
    used[split] = set(ids[ids >= 0].tolist())
  _, labels, order = digits_arrays()
  assert used["train"] <= set(order[:NUM_TRAIN].tolist())
  assert used["test"] <= set(order[NUM_TRAIN:].tolist())
  assert not used["train"] & used["test"] and len(used["test"]) > 50
  # Every labelled pixel is a stroke (bright), every class occurs.
  images, masks = data.train.images[..., 0], data.train.labels
  assert images[masks > 0].min() >= 127 / 255
  assert set(np.unique(masks)) == set(range(11))


def test_npz_and_tfds_masks_load_and_bad_masks_are_refused(tmp_path):
  (train, train_masks, _), (test, test_masks, _) = small_canvases(8, 4)
  path = tmp_path / "seg.npz"
  np.savez(path, x_train=train, y_train=train_masks[..., 0], x_test=test,
           y_test=test_masks[..., 0])
  data = load_segmentation_dataset(str(path))
  assert data.train.labels.shape == (8, 32, 32)
  np.testing.assert_array_equal(data.test.labels, test_masks[..., 0])
  bad = {
      "masks have shape \\[4, 32, 30\\] but the images \\[4, 32, 32, 1\\]":
          dict(y_test=test_masks[:, :, :30, 0]),
      "holds label 12 outside \\[0, 11\\)": dict(
          y_test=np.where(test_masks[..., 0] > 0, 12, 0)),
      "lacks y_test": dict(y_test=None)}
  for message, change in bad.items():
    arrays = {"x_train": train, "y_train": train_masks[..., 0], "x_test": test,
              "y_test": test_masks[..., 0], **change}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(ConfigError, match=message):
      load_segmentation_dataset(str(path))
  with tfds.testing.mock_data(num_examples=3):  # Images of random sizes.
    with pytest.raises(ConfigError, match="option image_size"):
      load_segmentation_dataset("oxford_iiit_pet", str(tmp_path))
    pets = load_segmentation_dataset("oxford_iiit_pet", str(tmp_path), 16)
  assert pets.train.images.shape == (3, 16, 16, 3)
  assert pets.test.labels.shape == (3, 16, 16)


@pytest.mark.slow
def test_small_unet_overfits_a_few_canvases():
  (images, masks, _), _ = small_canvases(8, 0)
  batch = {"image": images / 255.0, "label": masks[..., 0].astype(np.int32)}
  objective = segmentation_objective(UNet(11, depth=2, width=8),
                                     optax.adam(3e-2))
  state = jax.jit(objective.init)(jax.random.PRNGKey(0), batch)
  step = jax.jit(objective.train_step)
  for i in range(200):  # mIoU 1.0 from step 150 on.
    state, _ = step(state, batch, jax.random.PRNGKey(i))
  result = metrics.compute(jax.jit(objective.eval_step)(state, batch))
  assert result["miou"] > 0.9


@pytest.mark.slow
def test_script_writes_every_output(tmp_path, capsys):
  (train, train_masks, _), (test, test_masks, _) = small_canvases(32, 12)
  npz = tmp_path / "canvases.npz"
  np.savez(npz, x_train=train, y_train=train_masks[..., 0], x_test=test,
           y_test=test_masks[..., 0])
  tiny = ["--dataset", str(npz), "--width", "4", "--depth", "1",
          "--epochs", "2", "--batch-size", "16", "--eval-batch-size", "8",
          "--augment.max-shift", "2", "--optimizer.warmup-steps", "1"]
  full = tmp_path / "full"
  summary = run_script("segment", tiny + ["--workdir", str(full)])
  for name in ("metrics.jsonl", "summary.json", "curves.png", "model.txt",
               "samples_000002.png", "samples_000004.png"):
    assert (full / name).is_file(), name
  assert list((full / "tensorboard").iterdir())
  saved = json.loads((full / "summary.json").read_text())
  assert saved["test_miou"] == summary["test_miou"]
  assert len(saved["per_class_iou"]) == 11 and saved["num_classes"] == 11
  records = [json.loads(l) for l in (full / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4]
  assert {"test_miou", "test_pixel_accuracy", "test_iou_0",
          "train_loss"} <= records[-1].keys()
  assert "test mIoU" in capsys.readouterr().out
