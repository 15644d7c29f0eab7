"""Command line of the configs: flags, sections, config files, --help, one-line errors."""

import dataclasses
import json
import re

import pytest

from dlcore import cli
from dlcore.config import (differences, experiment_dict, field,
                           load_config_file, parse_args, to_dict,
                           validate)
from dlcore.errors import ConfigError, NonFiniteLossError


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  name: str = field("adam", "update rule", choices=("adam", "sgd"))
  lr: float = field(1e-3, "peak learning rate")
  weight_decay: float = field(0.0, "decoupled weight decay")


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  dataset: str = field("digits", "dataset name")
  batch_size: int = field(32, "examples per step")
  conditional: bool = field(False, "condition on the label")
  devices: int | None = field(None, "devices to use (default: all of them)")
  loss: str = field("mse", "TD loss", choices=("mse", "huber"))
  optimizer: OptimizerConfig = field(OptimizerConfig(lr=3e-3), "the optimizer")
  workdir: str = field("runs/toy", "where outputs go")
  resume: bool = field(False, "continue from the latest checkpoint")


DESCRIPTION = """Train a toy model.

A second paragraph long enough to need wrapping at eighty columns: it says
what the script does, where the ``results`` go and how a run is resumed.
Usage::

  python toy.py     # The defaults.
"""


def parse(argv):
  return parse_args(ToyConfig, DESCRIPTION, argv)


def test_no_flags_give_the_defaults_and_flags_set_options():
  assert parse([]) == ToyConfig()
  assert parse(["--batch-size", "8", "--conditional", "--loss", "huber",
                "--devices", "2", "--dataset=mnist"]) == ToyConfig(
                    dataset="mnist", batch_size=8, conditional=True,
                    devices=2, loss="huber")
  assert not parse(["--conditional", "--no-conditional"]).conditional


def test_section_fields_are_dotted_flags_with_the_section_defaults():
  config = parse(["--optimizer.name", "sgd", "--optimizer.weight-decay", "0.5"])
  assert config.optimizer == OptimizerConfig(name="sgd", lr=3e-3,
                                             weight_decay=0.5)
  assert parse(["--optimizer.lr", "0.25"]).optimizer.lr == 0.25


def _config_file(tmp_path, body):
  path = tmp_path / "toy.py"
  path.write_text(f"from {__name__} import OptimizerConfig, ToyConfig\n\n"
                  + body)
  return str(path)


def test_config_file_supplies_defaults_and_flags_override_them(tmp_path, capsys):
  path = _config_file(tmp_path, """
def get_config():
  return ToyConfig(batch_size=128, loss="huber",
                   optimizer=OptimizerConfig(name="sgd", lr=0.5))
""")
  expected = ToyConfig(batch_size=16, loss="huber",
                       optimizer=OptimizerConfig(name="sgd", lr=0.25))
  assert parse(["--config", path, "--batch-size", "16",
                "--optimizer.lr", "0.25"]) == expected
  assert parse(["--batch-size", "16", "--optimizer.lr", "0.25",
                f"--config={path}"]) == expected  # Order does not matter.
  with pytest.raises(SystemExit):
    parse(["--config", path, "--help"])
  out = capsys.readouterr().out
  assert "(default: 128)" in out and "(default: 32)" not in out


@pytest.mark.parametrize("body,message", [
    ("X = 1\n", "config file {path!r} defines no get_config(); it should "
     "return a ToyConfig"),
    ("def get_config():\n  return OptimizerConfig()\n",
     "get_config() of {path!r} returned a OptimizerConfig, not a ToyConfig"),
])
def test_unusable_config_file_is_one_line(tmp_path, capsys, body, message):
  path = _config_file(tmp_path, body)
  with pytest.raises(SystemExit) as exit_info:
    parse(["--config", path])
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == f"error: {message.format(path=path)}\n"


def test_help_lists_each_option_once_with_its_choices_and_default(
    monkeypatch, capsys):
  monkeypatch.setenv("COLUMNS", "80")
  with pytest.raises(SystemExit) as exit_info:
    parse(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  assert max(len(line) for line in out.splitlines()) <= 80
  assert "Train a toy model." in out
  assert "where the results go" in out and "Usage:\n" in out
  assert "\n    python toy.py     # The defaults.\n" in out  # Kept verbatim.
  for option in ("--config", "--dataset", "--batch-size", "--conditional",
                 "--no-conditional", "--devices", "--loss", "--optimizer.name",
                 "--optimizer.lr", "--optimizer.weight-decay", "--workdir",
                 "--resume", "--no-resume"):
    assert len(re.findall(rf"(?<![\w-]){re.escape(option)}(?![\w.-])", out)) == 1, option
  assert "--loss {mse,huber}" in out
  assert "--optimizer.name {adam,sgd}" in out
  assert "--conditional, --no-conditional" in out
  # One "(default" per option; devices' own help states its default.
  assert out.count("(default") == 10
  for default in ("digits", "32", "False", "mse", "adam", "0.003", "0.0",
                  "runs/toy"):
    assert f"(default: {default})" in out
  assert "(default: all of them)" in out and "None)" not in out


@pytest.mark.parametrize("argv,message", [
    (["--loss", "l1"], "invalid choice: 'l1' for --loss; choose one of mse, huber"),
    (["--optimizer.name", "rmsprop"],
     "invalid choice: 'rmsprop' for --optimizer.name; choose one of adam, sgd"),
    (["--batch-siz", "3"],
     "unrecognized option --batch-siz; did you mean --batch-size?"),
    (["--batch-size", "1.5"], "--batch-size expects INT, got '1.5'"),
    (["--optimizer.lr=fast"], "--optimizer.lr expects FLOAT, got 'fast'"),
    (["--devices", "all"], "--devices expects INT or None, got 'all'"),
    (["--batch-size"], "--batch-size expects a value (INT)"),
    (["--conditional=yes"], "--conditional takes no value, got 'yes'"),
    (["--conditional", "yes"], "unexpected argument 'yes'; see --help for the "
     "options"),
    (["--config", "no/such/file.py"],
     "config file 'no/such/file.py' does not exist"),
])
def test_bad_command_line_exits_2_with_one_line(capsys, argv, message):
  with pytest.raises(SystemExit) as exit_info:
    parse(argv)
  assert exit_info.value.code == 2
  captured = capsys.readouterr()
  assert captured.err == f"error: {message}\n"
  assert captured.out == ""


@dataclasses.dataclass(frozen=True)
class EvenBatchConfig:
  batch_size: int = field(32, "examples per step")

  def __post_init__(self):
    if self.batch_size % 2:
      raise ConfigError(f"option batch_size must be even, got {self.batch_size}")


def test_config_own_check_is_one_line_naming_the_flag(capsys):
  with pytest.raises(SystemExit) as exit_info:
    parse_args(EvenBatchConfig, "Even.", ["--batch-size", "3"])
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == "error: --batch-size must be even, got 3\n"


def test_to_dict_nests_sections_and_the_experiment_leaves_out_resume():
  config = ToyConfig(resume=True)
  assert to_dict(config)["optimizer"] == {"name": "adam", "lr": 3e-3,
                                          "weight_decay": 0.0}
  assert to_dict(config)["resume"] is True
  assert experiment_dict(config) == {
      k: v for k, v in to_dict(config).items() if k != "resume"}


def test_differences_names_changed_options_but_not_run_options():
  recorded = json.loads(json.dumps(experiment_dict(
      ToyConfig(workdir="a", devices=2))))
  current = experiment_dict(ToyConfig(
      workdir="b", devices=4, resume=True, batch_size=64,
      optimizer=OptimizerConfig(lr=0.1)))
  assert differences(recorded, current) == ["batch_size", "optimizer.lr"]
  assert differences(recorded, experiment_dict(ToyConfig(workdir="c"))) == []
  del recorded["loss"]  # An option the recorded run did not have.
  assert differences(recorded, experiment_dict(ToyConfig())) == ["loss"]
  assert differences({"sizes": [1, 2]}, {"sizes": (1, 2)}) == []


def test_run_names_flags_in_library_errors_and_exits_with_their_status(capsys):
  def bad_input():
    validate(RangedConfig(optimizer=RangedOptimizer(lr=0.0)))

  with pytest.raises(SystemExit) as exit_info:
    cli.run(bad_input)
  assert exit_info.value.code == cli.EXIT_BAD_INPUT == 2
  assert capsys.readouterr().err == "error: --optimizer.lr must be positive, got 0.0\n"

  def nested_option():
    raise ConfigError("option optimizer.weight_decay must be below option "
                      "optimizer.lr; options are checked once")

  with pytest.raises(SystemExit):
    cli.run(nested_option)
  assert capsys.readouterr().err == (
      "error: --optimizer.weight-decay must be below --optimizer.lr; options "
      "are checked once\n")

  def diverged():
    raise NonFiniteLossError(7)

  with pytest.raises(SystemExit) as exit_info:
    cli.run(diverged)
  assert exit_info.value.code == cli.EXIT_DIVERGED == 3
  err = capsys.readouterr().err
  assert err.startswith("error: loss became NaN or infinite at step 7")
  assert err.count("\n") == 1


@dataclasses.dataclass(frozen=True)
class RangedOptimizer:
  lr: float = field(1e-3, "peak learning rate", valid="(0, inf)")
  freeze: tuple[str, ...] = field((), "patterns to freeze")


@dataclasses.dataclass(frozen=True)
class RangedConfig:
  batch_size: int = field(32, "examples per step", valid="[1, inf)")
  devices: int | None = field(None, "devices", valid="[1, inf)")
  loss: str = field("mse", "TD loss", choices=("mse", "huber"))
  weights: tuple[float, ...] = field((), "class weights", valid="[0, inf)")
  optimizer: RangedOptimizer = field(RangedOptimizer(), "the optimizer")


@pytest.mark.parametrize("changes,message", [
    ({"batch_size": 32.5}, "option batch_size must be an integer, got 32.5"),
    ({"batch_size": "32"}, "option batch_size must be an integer, got '32' "
     "(a str)"),
    ({"batch_size": True}, "option batch_size must be an integer, got True "
     "(a bool)"),
    ({"batch_size": 0}, "option batch_size must be at least 1, got 0"),
    ({"devices": 0}, "option devices must be at least 1, got 0"),
    ({"devices": 2.0}, "option devices must be an integer or None, got 2.0"),
    ({"loss": "l1"}, "option loss must be one of mse, huber, got 'l1'"),
    ({"weights": (1.0, -1.0)}, "option weights must be at least 0, got -1.0"),
    ({"weights": "1,2"}, "option weights must be a tuple of numbers, got "
     "'1,2' (a str)"),
    ({"optimizer": RangedOptimizer(lr=float("nan"))},
     "option optimizer.lr must be positive, got nan"),
    ({"optimizer": RangedOptimizer(lr=float("inf"))},
     "option optimizer.lr must be positive and finite, got inf"),
    ({"optimizer": RangedOptimizer(freeze="Dense_0/.*")},
     "option optimizer.freeze must be a tuple of strings, got 'Dense_0/.*' "
     "(a str)"),
    ({"optimizer": RangedOptimizer(freeze=("a", 3))},
     "option optimizer.freeze must be a tuple of strings, got ('a', 3) "
     "(holding 3)"),
    ({"optimizer": OptimizerConfig()}, "option optimizer must be a "
     "RangedOptimizer, got OptimizerConfig(name='adam', lr=0.001, "
     "weight_decay=0.0) (a OptimizerConfig)"),
])
def test_validate_names_the_first_bad_field_in_one_sentence(changes, message):
  validate(RangedConfig())
  validate(RangedConfig(batch_size=8, devices=2, weights=(0.5, 1),
                        optimizer=RangedOptimizer(lr=1)))  # An int is a number.
  with pytest.raises(ConfigError) as error:
    validate(dataclasses.replace(RangedConfig(), **changes))
  assert str(error.value) == message


@pytest.mark.parametrize("body,message", [
    ("def get_config(:\n", "config file {path!r} has a syntax error at line 3: "
     "invalid syntax"),
    ("import no_such_module_here\n", "config file {path!r} cannot be loaded: "
     "ModuleNotFoundError: No module named 'no_such_module_here'"),
    ("import sys\nsys.exit(0)\n", "config file {path!r} calls sys.exit() "
     "when it is loaded; a config file should only define get_config()"),
    ("def get_config(size):\n  return ToyConfig()\n",
     "get_config() of {path!r} must take no arguments"),
    ("def get_config():\n  return 1 / 0\n", "get_config() of {path!r} raised "
     "ZeroDivisionError: division by zero"),
    ("class Sub(ToyConfig):\n  pass\n\ndef get_config():\n  return Sub()\n",
     "get_config() of {path!r} returned a Sub, not a ToyConfig"),
    ("def get_config():\n  return ToyConfig(batch_size='64')\n",
     "get_config() of {path!r} returned a config whose batch_size must be an "
     "integer, got '64' (a str)"),
])
def test_config_files_that_cannot_be_used_are_one_sentence(tmp_path, body,
                                                          message):
  path = _config_file(tmp_path, body)
  with pytest.raises(ConfigError) as error:
    load_config_file(path, ToyConfig)
  assert str(error.value) == message.format(path=path)


def test_a_directory_is_not_a_config_file(tmp_path):
  (tmp_path / "big.py").mkdir()
  with pytest.raises(ConfigError, match="is a directory; give a Python file"):
    load_config_file(tmp_path / "big.py", ToyConfig)
