"""Every experiment script's command line: ``--help`` lists every option once, bad input is one line."""

import dataclasses
import os
import pathlib
import re
import subprocess
import sys
import typing

import pytest

from conftest import EXPERIMENTS, load_script

ROOT = EXPERIMENTS.parent
# Each script and the config its options come from.
SCRIPTS = {"classify": "ClassifyConfig", "finetune": "FinetuneConfig",
           "gan": "GanConfig", "vae": "VaeConfig", "segment": "SegmentConfig",
           "cyclegan": "CycleGanConfig", "cyclegan_paired_bound":
           "PairedBoundConfig", "dqn": "DqnConfig", "ppo": "PpoConfig"}


def flags(config_cls, prefix=""):
  """``(flag, choices)`` of every option of ``config_cls``, sections' dotted."""
  hints = typing.get_type_hints(config_cls)
  for f in dataclasses.fields(config_cls):
    if dataclasses.is_dataclass(hints[f.name]):
      yield from flags(hints[f.name], f"{prefix}{f.name}.")
    else:
      yield "--" + (prefix + f.name).replace("_", "-"), f.metadata["choices"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_lists_every_option_once_with_its_choices(name, capsys,
                                                       monkeypatch):
  monkeypatch.setenv("COLUMNS", "80")
  module = load_script(name)
  with pytest.raises(SystemExit) as exit_info:
    module.main(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  assert module.__doc__.split("\n")[0].replace("``", "")[:40] in out
  config_cls = getattr(module, SCRIPTS[name])
  options = out[out.index("-h, --help"):]
  for flag, choices in flags(config_cls):
    # Each option's entry starts a line of the options, after the description.
    found = re.findall(rf"(?m)^(?:│ |  ){re.escape(flag)}(?![\w.-])", options)
    assert len(found) == 1, (name, flag, len(found))
    if choices:
      listed = re.sub(r"[│\s]+", "", options)  # Long choices wrap.
      assert f"{flag}{{{','.join(choices)}}}" in listed, flag


def test_a_real_process_prints_one_sentence_and_exits_2(tmp_path):
  result = subprocess.run(
      [sys.executable, "experiments/classify.py", "--dataset", "nope.npz",
       "--workdir", str(tmp_path / "run")], cwd=ROOT, capture_output=True,
      text=True, check=False)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      "error: dataset file 'nope.npz' does not exist"]
  assert not (tmp_path / "run").exists()
