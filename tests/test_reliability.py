"""What dlcore guarantees under concurrent runs, crashes, corruption and a full disk.

Each test meets the failure as a user would: real processes holding and
killed with real signals, real files cut or overwritten, a really full
(small tmpfs) file system.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import files, loop
from dlcore.checkpoint import Checkpointer, DAMAGED_DIR
from dlcore.errors import ConfigError, DiskFull, NonFiniteLossError

ROOT = pathlib.Path(__file__).resolve().parents[1]
EVERY = loop.Cadences(log=1, eval=2, sample=0, checkpoint=2)
# A child process running ``run`` below on a slow step, until it is killed.
CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
import test_reliability as t
t.run(sys.argv[1], num_steps=1000, pause=0.02)
"""


def _step(state, batch, key):
  del key
  return {"x": state["x"] + batch}, {"loss": jnp.sum(state["x"])}


STEP = jax.jit(_step)


def run(workdir, num_steps: int, *, resume: bool = False, size: int = 3,
        evaluate=None, pause: float = 0.0):
  """``loop.train`` of a counter: ``x`` (``[size]``, random at step 0) ``+= 1`` every step.

  Records every step, evaluates and saves every second step.
  """
  def step(*args):  # Slow enough, when asked, to be killed mid-run.
    time.sleep(pause)
    return STEP(*args)
  return loop.train(
      {"x": initial(size)}, step if pause else STEP,
      lambda start: iter(lambda: jnp.ones(()), None),
      key=jax.random.PRNGKey(0), num_steps=num_steps,
      workdir=pathlib.Path(workdir), every=EVERY, resume=resume,
      config={"size": size},
      evaluate=evaluate or (lambda state: {"test_x": float(state["x"][0])}))


def initial(size: int) -> jax.Array:
  """Random, so that a checkpoint does not compress to nothing."""
  return jax.random.normal(jax.random.PRNGKey(0), (size,))


def counted(size: int, steps: int) -> np.ndarray:
  """``initial(size)`` after ``steps`` steps, one float32 addition at a time."""
  x = np.asarray(initial(size))
  for _ in range(steps):
    x = x + np.float32(1.0)
  return x


def without_times(records):
  return [{k: v for k, v in r.items() if k not in ("seconds", "steps_per_sec")}
          for r in records]


def reference(tmp_path, num_steps: int, size: int = 3):
  """The records of an uninterrupted run of ``num_steps``."""
  _, history = run(tmp_path / "reference", num_steps, size=size)
  return without_times(history.records)


def test_a_workdir_is_held_by_one_run_and_a_dead_holders_lock_is_stale(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from dlcore.lock import "
       "WorkdirLock; WorkdirLock(sys.argv[1]).__enter__(); print('held', "
       "flush=True); time.sleep(600)", str(workdir)],
      cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline() == "held\n"
    for resume in (False, True):  # A second run, fresh or resumed.
      with pytest.raises(ConfigError, match=(
          rf"workdir '{workdir}' is in use by another run \(process "
          rf"{holder.pid} on .+\); wait for it to end or choose another "
          "option workdir")):
        run(workdir, 4, resume=resume)
    assert sorted(p.name for p in workdir.iterdir()) == [".lock"]
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  _, history = run(workdir, 4)  # The dead holder's lock is taken over.
  assert without_times(history.records) == reference(tmp_path, 4)


def test_results_are_never_overwritten_and_resume_says_when_it_starts_afresh(
    tmp_path, capfd):
  workdir = tmp_path / "run"
  workdir.mkdir()
  crashed = [{"step": 1, "train_loss": 9.0}]  # A run killed before saving.
  files.write_jsonl(workdir / "metrics.jsonl", crashed)
  with pytest.raises(ConfigError, match=r"already holds a run \(metrics.jsonl\)"):
    run(workdir, 4)
  assert files.read_jsonl(workdir / "metrics.jsonl") == crashed
  _, history = run(workdir, 4, resume=True)
  assert capfd.readouterr().err.count(
      f"no checkpoint in '{workdir}' to resume from: starting from step 0") == 1
  expected = reference(tmp_path, 4)
  assert without_times(history.records) == expected
  assert without_times(files.read_jsonl(workdir / "metrics.jsonl")) == expected


def cut_mid_line(path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) - 7])


def drop_last_record(path):
  files.write_jsonl(path, files.read_jsonl(path)[:-1])


@pytest.mark.parametrize("damage", [cut_mid_line, drop_last_record,
                                    pathlib.Path.unlink],
                         ids=["cut", "last-record-lost", "deleted"])
def test_every_record_comes_back_exactly_once_from_the_checkpoint(tmp_path, damage):
  """A crash between the checkpoint and the log's update, a torn or deleted log."""
  workdir = tmp_path / "run"
  run(workdir, 4)
  damage(workdir / "metrics.jsonl")
  _, history = run(workdir, 6, resume=True)
  expected = reference(tmp_path, 6)
  assert without_times(history.records) == expected
  assert without_times(files.read_jsonl(workdir / "metrics.jsonl")) == expected
  assert history.train_seconds == pytest.approx(
      sum(r["seconds"] for r in history.records))


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume_loses_nothing(tmp_path):
  # The moment is drawn from a seed (DLCORE_KILL_SEED replays a failure).
  seed = int(os.environ.get("DLCORE_KILL_SEED", time.time_ns() % 2**32))
  print(f"DLCORE_KILL_SEED={seed}")  # Shown by pytest when the test fails.
  workdir = tmp_path / "run"
  child = subprocess.Popen(
      [sys.executable, "-c", CHILD.format(tests=str(ROOT / "tests")),
       str(workdir)], cwd=ROOT, stderr=subprocess.DEVNULL)
  first = workdir / "checkpoints" / "4"
  deadline = time.time() + 60
  while not first.exists() and time.time() < deadline:
    time.sleep(0.01)
  time.sleep(np.random.default_rng(seed).uniform(0.0, 0.2))
  child.send_signal(signal.SIGKILL)
  child.wait()
  state, history = run(workdir, 30, resume=True)
  np.testing.assert_array_equal(state["x"], counted(3, 30))
  assert without_times(history.records) == reference(tmp_path, 30)


def data_file(checkpoint: pathlib.Path) -> pathlib.Path:
  """The largest array data file of a checkpoint."""
  return max((p for p in (checkpoint / "state").rglob("*")
              if p.is_file() and p.parent.name == "d"),
             key=lambda p: p.stat().st_size)


def overwrite_bytes(checkpoint):
  path = data_file(checkpoint)
  data = bytearray(path.read_bytes())
  data[len(data) // 2:len(data) // 2 + 4] = b"\xff\x00\xff\x00"
  path.write_bytes(bytes(data))


def truncate_data(checkpoint):
  path = data_file(checkpoint)
  path.write_bytes(path.read_bytes()[:10])


def delete_metadata(checkpoint):
  (checkpoint / "state" / "_METADATA").unlink()


def garbage_meta(checkpoint):
  (checkpoint / "meta" / "metadata").write_text('{"step": 6, "records": [')


@pytest.mark.parametrize("damage, why", [
    (overwrite_bytes, r"its file state/\S+ does not match its checksum"),
    (truncate_data, r"its file state/\S+ does not match its checksum"),
    (delete_metadata, "its file state/_METADATA is missing"),
    (garbage_meta, "its file meta/metadata does not match its checksum")],
    ids=["overwritten", "truncated", "metadata-missing", "garbage-meta"])
def test_a_damaged_checkpoint_is_skipped_for_the_newest_intact_one(
    tmp_path, capfd, damage, why):
  workdir = tmp_path / "run"
  run(workdir, 6, size=4096)  # Checkpoints at steps 2, 4, 6.
  damage(workdir / "checkpoints" / "6")
  state, history = run(workdir, 8, resume=True, size=4096)
  err = capfd.readouterr().err
  assert len(re.findall(
      rf"checkpoint at step 6 skipped: {why}; moved to "
      rf"{workdir / DAMAGED_DIR / '6'}", err)) == 1, err
  np.testing.assert_array_equal(state["x"], counted(4096, 8))
  assert [r["step"] for r in history.records] == list(range(1, 9))
  assert (workdir / DAMAGED_DIR / "6").is_dir()  # Kept, not deleted.


def test_no_intact_checkpoint_is_one_sentence(tmp_path):
  workdir = tmp_path / "run"
  run(workdir, 6)
  for step in (2, 4, 6):
    overwrite_bytes(workdir / "checkpoints" / str(step))
  with pytest.raises(ConfigError, match=(
      r"no intact checkpoint in '.+': step 6 \(its file .+ does not match its "
      r"checksum\); step 4 \(.+\); step 2 \(.+\); they were moved to "
      r"damaged_checkpoints/")):
    run(workdir, 8, resume=True)


@pytest.fixture
def small_disk(tmp_path):
  """A 1 MiB tmpfs, or a skip where this machine may not mount one."""
  mount = tmp_path / "disk"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                     str(mount)], capture_output=True).returncode:
    pytest.skip("mounting a small tmpfs needs root")
  yield mount
  subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_is_one_sentence_and_the_last_checkpoint_survives(
    tmp_path, small_disk):
  workdir = small_disk / "run"
  size = 100_000  # 400 kB a checkpoint: the second fits, the third does not.
  with pytest.raises(DiskFull, match=(
      rf"no space left on the device of '{workdir}': training stopped, the "
      r"checkpoint at step \d+ is intact and no partial checkpoint was left")):
    run(workdir, 12, size=size)
  leftovers = [p.name for p in (workdir / "checkpoints").iterdir()]
  assert leftovers and all(name.isdigit() for name in leftovers), leftovers
  subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
  state, history = run(workdir, 12, resume=True, size=size)
  np.testing.assert_array_equal(state["x"], counted(size, 12))
  assert without_times(history.records) == reference(tmp_path, 12, size)


def test_evaluation_is_guarded_like_training(tmp_path):
  evaluate = lambda state: {"test_loss": (float("inf") if state["x"][0]
                                          >= initial(3)[0] + 4 else 1.0)}
  with pytest.raises(NonFiniteLossError,
                     match="test_loss became NaN or infinite at step 4"):
    run(tmp_path / "run", 6, evaluate=evaluate)
  assert Checkpointer(tmp_path / "run" / "checkpoints").latest_step() == 2


def test_results_are_strict_json(tmp_path):
  files.write_json(tmp_path / "summary.json",
                   {"fcd": float("inf"), "per_seed": [1.0, float("nan")]})
  files.append_jsonl(tmp_path / "metrics.jsonl", [{"step": 1, "x": -float("inf")}])
  def refuse(token):
    raise ValueError(f"not JSON: {token}")
  summary = json.loads((tmp_path / "summary.json").read_text(),
                       parse_constant=refuse)
  assert summary == {"fcd": None, "per_seed": [1.0, None],
                     "non_finite": ["fcd", "per_seed[1]"]}
  record = json.loads((tmp_path / "metrics.jsonl").read_text(),
                      parse_constant=refuse)
  assert record == {"step": 1, "x": None, "non_finite": ["x"]}


def test_another_runs_damaged_checkpoint_is_skipped_but_left_in_place(tmp_path):
  """Reading a run (e.g. to fine-tune from it) never moves its files."""
  workdir = tmp_path / "run"
  run(workdir, 6)
  overwrite_bytes(workdir / "checkpoints" / "6")
  checkpointer = Checkpointer(workdir / "checkpoints", read_only=True)
  state, meta = checkpointer.restore_latest()
  checkpointer.close()
  assert meta["step"] == 4
  np.testing.assert_array_equal(state["x"], counted(3, 4))
  assert (workdir / "checkpoints" / "6").is_dir()
  assert not (workdir / DAMAGED_DIR).exists()
