"""Experiment configs: frozen dataclasses, parsed from the command line by tyro.

Usage::

  @dataclasses.dataclass(frozen=True)
  class OptimizerConfig:
    name: str = field("adam", "update rule", choices=("adam", "sgd"))
    lr: float = field(1e-3, "peak learning rate")

  @dataclasses.dataclass(frozen=True)
  class Config:
    epochs: int = field(10, "passes over the training set")
    optimizer: OptimizerConfig = field(OptimizerConfig(lr=3e-3), "optimizer")

  config = parse_args(Config, description="Train a classifier.")
  # python train.py --epochs 3 --optimizer.lr 0.01 --config configs/big.py

Each field's default, help text and choices live in one place, the
dataclass. A field whose default is a frozen dataclass is a section: its
fields become ``--section.name`` flags. ``--help`` lists every option once,
with its help, its choices and its default.

Config files follow ml_collections (``--config file.py`` calls the file's
``get_config()``), except that ``get_config()`` returns the typed config
itself rather than a dict: a misspelt option fails where it is written, and
command-line flags keep their short names (``--lr``, not ``--config.lr``).
The file supplies the defaults; flags override them, wherever they stand.

Bad command-line input (an unknown flag, a value of the wrong type, a value
outside the choices) exits with status 2 and one line ``error: ...`` on
stderr. tyro reports such input to the hook of its private module
``tyro._errors`` (the same in tyro 1.0.16 and 1.0.17), which turns each
report into one sentence before tyro draws its box.
"""

import dataclasses
import difflib
import functools
import importlib.util
import inspect
import json
import pathlib
import re
import shutil
import sys
import textwrap
import typing
from typing import Annotated, Any, Literal, Sequence, TypeVar

import tyro
from tyro import _errors as tyro_errors
from tyro.constructors import (ConstructorRegistry, StructConstructorSpec,
                               StructFieldSpec, StructTypeInfo)

from dlcore.errors import ConfigError

T = TypeVar("T")

# The seeds ``jax.random.PRNGKey`` takes as they are (a larger one wraps
# around to a smaller seed's key; NumPy refuses a negative one).
SEED_RANGE = "[0, 4294967295]"

# Options that do not change what a run computes: a resumed run may differ
# from the recorded one in these (where it runs, how often it reports and
# saves), and in nothing else.
RUN_OPTIONS = ("resume", "workdir", "data_dir", "devices", "parallel",
               "coordinator_address", "num_processes", "process_id",
               "coordinator_timeout",
               "log_every", "eval_every", "sample_every", "checkpoint_every")


def field(default: Any, help: str, choices: Sequence[str] | None = None,  # pylint: disable=redefined-builtin
          valid: str | None = None):
  """A dataclass field carrying its command-line help text (and choices).

  ``--help`` appends ``(default: VALUE)`` to ``help``, unless ``help`` ends
  with its own parenthesis about the default, such as ``"devices to use
  (default: all of them)"``: that parenthesis is shown in its place.

  ``valid`` is a numeric option's range in interval notation: ``"(0, inf)"``
  (positive), ``"[1, inf)"``, ``"[0, 1)"``, ``"[0, 4294967295]"``.
  ``--help`` shows it, and ``check_ranges`` (run by ``parse_args``) refuses
  a value outside it, NaN included, in one sentence that states it; an
  optional option's None is not checked.
  """
  if valid is not None:
    Interval.parse(valid)  # A typo fails where the option is declared.
  return dataclasses.field(default=default, metadata={
      "help": help, "choices": choices, "valid": valid})


@dataclasses.dataclass(frozen=True)
class Interval:
  """A range of numbers: ``low`` to ``high``, each end closed or open."""
  low: float
  high: float
  low_closed: bool
  high_closed: bool
  text: str

  @classmethod
  def parse(cls, text: str) -> "Interval":
    """``"[0, 1)"`` -> 0 <= x < 1; ends are numbers, ``inf`` or ``-inf``."""
    match = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", text)
    if match is None:
      raise ValueError(f"bad interval {text!r}; write it like '[0, 1)'")
    opening, low, high, closing = match.groups()
    return cls(float(low), float(high), opening == "[", closing == "]", text)

  def __contains__(self, value: float) -> bool:
    above = self.low <= value if self.low_closed else self.low < value
    below = value <= self.high if self.high_closed else value < self.high
    return above and below  # False for NaN.

  def describe(self) -> str:
    """``"at least 1"``, ``"positive"``, or ``"in [0, 1)"``."""
    if self.high == float("inf") and not self.high_closed:
      low = int(self.low) if self.low == int(self.low) else self.low
      if self.low_closed:
        return f"at least {low}"
      return "positive" if low == 0 else f"above {low}"
    return f"in {self.text}"


def check_ranges(config: Any, prefix: str = "") -> None:
  """Raises ``ConfigError`` for the first option of ``config`` outside its ``valid`` range.

  Reaches into sections (fields that are configs themselves); the sentence
  names the option dotted from ``prefix`` (``option optimizer.lr must be
  positive, got 0.0``).
  """
  for f in dataclasses.fields(config):
    value, name = getattr(config, f.name), prefix + f.name
    if dataclasses.is_dataclass(value):
      check_ranges(value, f"{name}.")
    elif f.metadata.get("valid") is not None and value is not None:
      interval = Interval.parse(f.metadata["valid"])
      if value not in interval:
        raise ConfigError(
            f"option {name} must be {interval.describe()}, got {value}")


def flag(name: str) -> str:
  """The flag of option ``name``: ``optimizer.weight_decay`` -> ``--optimizer.weight-decay``."""
  return "--" + name.replace("_", "-")


def with_flags(message: str) -> str:
  """``message`` with each ``option NAME`` written as its flag ``--NAME``."""
  return re.sub(r"\boption ([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)",
                lambda match: flag(match.group(1)), message)


def _is_config(cls: Any) -> bool:
  """Whether ``cls`` is a dataclass whose every field was made by ``field``."""
  return (isinstance(cls, type) and dataclasses.is_dataclass(cls)
          and all("help" in f.metadata for f in dataclasses.fields(cls)))


_REGISTRY = ConstructorRegistry()
# Help text, then a final parenthesis that states the default.
_STATED_DEFAULT = re.compile(r"(.*?)\s*(\([^()]*\bdefault\b[^()]*\))", re.DOTALL)


@_REGISTRY.struct_rule
def _config_spec(info: StructTypeInfo) -> StructConstructorSpec | None:
  """How tyro builds a config: ``choices`` become a ``Literal`` (checked when
  parsed, listed in ``--help``), and a help's own parenthesis about the
  default replaces tyro's ``(default: ...)``."""
  if not _is_config(info.type):
    return None
  hints = typing.get_type_hints(info.type)
  specs = []
  for f in dataclasses.fields(info.type):
    kind, helptext = hints[f.name], f.metadata["help"]
    if f.metadata["choices"] is not None:
      kind = Literal[tuple(f.metadata["choices"])]
    stated = _STATED_DEFAULT.fullmatch(helptext)
    if stated:
      helptext, hint = stated.groups()
      kind = Annotated[kind, tyro.conf.arg(help_behavior_hint=hint)]
    if f.metadata.get("valid") is not None:
      helptext = f"{helptext}, in {f.metadata['valid']}"
    default = (getattr(info.default, f.name)
               if isinstance(info.default, info.type) else f.default)
    specs.append(StructFieldSpec(name=f.name, type=kind, default=default,
                                 helptext=helptext))
  return StructConstructorSpec(instantiate=info.type, fields=tuple(specs))


def _leaves(tree: dict[str, Any], prefix: str = ""):
  """(dotted name, value) of every non-dict leaf of a nested dict, in order."""
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


def _flags(config_cls: type) -> list[str]:
  """Every flag of ``config_cls``: sections' as ``--section.name``, bools' also as ``--no-name``."""
  names = []
  for name, value in _leaves(dataclasses.asdict(config_cls())):
    names.append(flag(name))
    if isinstance(value, bool):
      section, dot, last = name.rpartition(".")
      names.append(flag(f"{section}{dot}no_{last}"))
  return names


def load_config_file(path: str | pathlib.Path, config_cls: type[T]) -> T:
  """The ``config_cls`` returned by ``get_config()`` of the Python file ``path``.

  Raises:
    ConfigError: the file is missing, defines no ``get_config``, or its
      ``get_config()`` returns something other than a ``config_cls``.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConfigError(f"config file {str(path)!r} does not exist")
  spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"config file {str(path)!r} defines no get_config(); "
                      f"it should return a {config_cls.__name__}")
  config = module.get_config()
  if not isinstance(config, config_cls):
    raise ConfigError(f"get_config() of {str(path)!r} returned a "
                      f"{type(config).__name__}, not a {config_cls.__name__}")
  return config


def _config_file_argument(argv: Sequence[str]) -> str | None:
  """The value of the last ``--config FILE`` (or ``--config=FILE``) in ``argv``."""
  path = None
  for i, token in enumerate(argv):
    if token == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
    elif token.startswith("--config="):
      path = token.partition("=")[2]
  return path


def _command(config_cls: type[T], defaults: T):
  """The function tyro parses: ``--config FILE`` beside the config's options."""

  def command(
      config_file: Annotated[str | None, tyro.conf.arg(
          name="config", metavar="FILE", help_behavior_hint="",
          help="Python file whose get_config() returns the defaults "
          "(the flags override them)")] = None,
      config: Annotated[config_cls, tyro.conf.arg(name="")] = defaults,
  ):
    del config_file  # Already read: it supplied ``defaults``.
    return config

  return command


def _terminal_text(docstring: str) -> str:
  """``docstring`` as plain text for ``--help``.

  RST literal quotes and ``::`` go; paragraphs are wrapped to the terminal
  (at most 80 columns), literal blocks kept line by line; every line is
  indented by two spaces, which makes tyro keep the line breaks (it joins
  lines that start with a letter).
  """
  width = min(shutil.get_terminal_size().columns, 80)
  blocks = []
  for block in inspect.cleandoc(docstring).replace("``", "").split("\n\n"):
    if block.startswith(" "):  # A literal block.
      blocks.append(textwrap.indent(block, "  "))
    else:
      blocks.append(textwrap.fill(
          re.sub(r"::$", ":", " ".join(block.split())), width,
          initial_indent="  ", subsequent_indent="  "))
  return "\n\n".join(blocks)


def _given_value(option: str, argv: Sequence[str]) -> str:
  """The value last given to flag ``option`` in ``argv`` (``--x V`` or ``--x=V``)."""
  given = [argv[i].partition("=")[2] if "=" in argv[i] else argv[i + 1]
           for i in range(len(argv))
           if argv[i].partition("=")[0].replace("_", "-") == option]
  return given[-1]


def _sentence(event: tyro_errors.ParseErrorEvent, argv: Sequence[str],
              known_flags: Sequence[str]) -> str | None:
  """One sentence for tyro's report of bad input; None for reports it cannot phrase."""
  if isinstance(event, tyro_errors.InvalidChoice):
    option = event.argument.lowered.name_or_flags[0]
    return (f"invalid choice: {event.value!r} for {option}; choose one of "
            f"{', '.join(event.choices)}")
  if (isinstance(event, tyro_errors.InstantiationFailure)
      and event.argument is not None):
    option = event.argument.lowered.name_or_flags[0]
    return (f"{option} expects {event.argument.lowered.metavar}, got "
            f"{_given_value(option, argv)!r}")
  if isinstance(event, tyro_errors.BadValue) and event.offending_value is None:
    option = event.argument.lowered.name_or_flags[0]
    return f"{option} expects a value ({event.argument.lowered.metavar})"
  if isinstance(event, tyro_errors.UnrecognizedArgs):
    token = next((t for t in event.tokens if t.startswith("-")), None)
    if token is None:
      return (f"unexpected argument {event.tokens[0]!r}; see --help for "
              "the options")
    close = difflib.get_close_matches(token.partition("=")[0], known_flags, n=1)
    return f"unrecognized option {token}; " + (
        f"did you mean {close[0]}?" if close else "see --help for the options")
  return None


def parse_args(config_cls: type[T], description: str,
               argv: Sequence[str] | None = None) -> T:
  """Parses ``argv`` (default: ``sys.argv[1:]``) into a ``config_cls``.

  ``--config FILE`` supplies the defaults (see ``load_config_file``); the
  other flags override them. ``--help`` prints every option and exits 0; bad
  input (a value outside its ``valid`` range too), or a ``ConfigError``
  from ``config_cls`` itself, prints one line
  ``error: ...`` to stderr and exits with status 2.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  known_flags = ["--config", "--help"] + _flags(config_cls)

  def raise_one_sentence(event: tyro_errors.ParseErrorEvent) -> None:
    sentence = _sentence(event, argv, known_flags)
    if sentence is not None:
      raise ConfigError(sentence)

  try:
    path = _config_file_argument(argv)
    defaults = (config_cls() if path is None
                else load_config_file(path, config_cls))
    with tyro_errors.on_parse_error(raise_one_sentence):
      config = tyro.cli(_command(config_cls, defaults), args=argv,
                        description=_terminal_text(description),
                        registry=_REGISTRY)
    check_ranges(config)
    return config
  except ConfigError as e:  # Also from the config's own checks.
    print(f"error: {with_flags(str(e))}", file=sys.stderr)
    sys.exit(2)


def check_positive(config, *names: str) -> None:
  """Raises ``ConfigError`` naming the first option among ``names`` below 1.

  A name may be dotted (``"optimizer.warmup_steps"``) to reach into a section.
  """
  for name in names:
    value = functools.reduce(getattr, name.split("."), config)
    if value < 1:
      raise ConfigError(f"option {name} must be at least 1, got {value}")


def to_dict(config) -> dict[str, Any]:
  """The config as a JSON-serialisable dict; each section a nested dict."""
  return dataclasses.asdict(config)


def experiment_dict(config) -> dict[str, Any]:
  """``to_dict(config)`` without ``resume``, as JSON reads it back (tuples are lists).

  This is what a run records as its experiment, in ``summary.json`` and
  with every checkpoint.
  """
  return json.loads(json.dumps(
      {k: v for k, v in to_dict(config).items() if k != "resume"}))


_ABSENT = object()


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Dotted names of the options whose values differ, ignoring ``RUN_OPTIONS``.

  ``recorded`` may have been through JSON (lists for tuples); an option in
  only one of the dicts differs. Sorted; empty when the experiments agree.
  """
  def comparable(tree):
    return {name: list(v) if isinstance(v, tuple) else v
            for name, v in _leaves(tree)
            if name.partition(".")[0] not in RUN_OPTIONS}

  before, after = comparable(recorded), comparable(current)
  return sorted(name for name in before.keys() | after.keys()
                if before.get(name, _ABSENT) != after.get(name, _ABSENT))
