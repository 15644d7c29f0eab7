"""Hostile but fair input, met the way a user meets it: one sentence, exit 2, nothing written.

Each case runs an experiment script's ``main`` under ``cli.run`` (as its
``__main__`` does) and checks the exit status, that stderr is one line
``error: ...`` naming the problem, and that the workdir was not created.
"""

import dataclasses
import importlib.util
import math
import pathlib
import typing

import pytest

from dlcore import cli
from dlcore.config import Interval, check_ranges
from dlcore.errors import ConfigError

SCRIPTS = pathlib.Path(__file__).parent.parent / "experiments"
# Cadences are checked by ``loop.check_cadences`` (0 or a positive multiple).
CADENCES = {"log_every", "eval_every", "sample_every", "checkpoint_every"}


def script(name: str):
  spec = importlib.util.spec_from_file_location(f"{name}_script",
                                                SCRIPTS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def refused(capsys, name: str, argv: list[str], workdir: pathlib.Path) -> str:
  """The one sentence ``experiments/<name>.py argv`` exits 2 with; nothing written."""
  module = script(name)
  with pytest.raises(SystemExit) as exit_info:
    cli.run(lambda: module.main([*argv, "--workdir", str(workdir)]))
  err = capsys.readouterr().err
  assert exit_info.value.code == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert "Traceback" not in err
  assert not workdir.exists()
  return err[len("error: "):-1]


def numeric_options(config, prefix=""):
  """(dotted name, field) of every int or float option of ``config``, sections included."""
  hints = typing.get_type_hints(type(config))
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    if dataclasses.is_dataclass(value):
      yield from numeric_options(value, f"{prefix}{f.name}.")
    elif {int, float} & set(typing.get_args(hints[f.name]) or
                            [hints[f.name]]):
      yield prefix + f.name, f


def replace(config, dotted: str, value):
  """``config`` with the option ``dotted`` (``optimizer.lr``) set to ``value``."""
  name, _, rest = dotted.partition(".")
  if rest:
    value = replace(getattr(config, name), rest, value)
  return dataclasses.replace(config, **{name: value})


def outside(interval: Interval) -> list[float]:
  """Values just outside ``interval``."""
  values = []
  if math.isfinite(interval.low):
    values.append(interval.low if not interval.low_closed else interval.low - 1)
  if math.isfinite(interval.high):
    values.append(interval.high if not interval.high_closed
                  else interval.high + 1)
  return values


CONFIGS = {name: getattr(script(name), attribute)
           for name, attribute in (("classify", "ClassifyConfig"),
                                   ("gan", "GanConfig"), ("vae", "VaeConfig"),
                                   ("dqn", "DqnConfig"))}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_numeric_option_refuses_values_outside_its_stated_range(name):
  config = CONFIGS[name]()
  check_ranges(config)  # The defaults are valid.
  options = list(numeric_options(config))
  for option, f in options:
    if f.name in CADENCES and f.metadata.get("valid") is None:
      continue  # loop.check_cadences: a test below.
    assert f.metadata.get("valid") is not None, f"{name}: {option} unchecked"
    interval = Interval.parse(f.metadata["valid"])
    for value in outside(interval) + [float("nan")]:
      changed = replace(config, option, value)
      with pytest.raises(ConfigError) as error:
        check_ranges(changed)
      assert str(error.value) == (f"option {option} must be "
                                  f"{interval.describe()}, got {value}")


@pytest.mark.parametrize("name, argv, message", [
    ("classify", ["--optimizer.lr", "0"],
     "--optimizer.lr must be positive, got 0.0"),
    ("classify", ["--eval-every", "-5"], "--eval-every must be 0 (at the end "
     "only) or a positive multiple of 1, got -5"),
    ("vae", ["--log-every", "-1"], "--log-every must be 0 (at the end only) "
     "or a positive multiple of 1, got -1"),
    ("gan", ["--steps", "10", "--g-optimizer.warmup-steps", "10"],
     "--g-optimizer.warmup-steps must be below the number of updates, 10 (10 "
     "steps // --g-optimizer.accumulate 1), got 10"),
    ("classify", ["--optimizer.weight-decay", "-0.1"],
     "--optimizer.weight-decay must be at least 0, got -0.1"),
    ("gan", ["--gp-weight", "-1"], "--gp-weight must be at least 0, got -1.0"),
    ("gan", ["--d-optimizer.b1", "1"],
     "--d-optimizer.b1 must be in [0, 1), got 1.0"),
    ("vae", ["--seed", "4294967296"],
     "--seed must be in [0, 4294967295], got 4294967296"),
    ("dqn", ["--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    ("dqn", ["--total-steps", "5000", "--log-every", "1000"],
     "--total-steps 5000 (a run of 5000 environment steps in whole chunks) "
     "ends before the first gradient update at environment step 10000 "
     "(--learning-starts 10000), so the agent would learn nothing; raise "
     "--total-steps or lower --learning-starts"),
])
def test_bad_options_named_with_their_range(name, argv, message, capsys,
                                             tmp_path):
  assert refused(capsys, name, argv, tmp_path / "run") == message
