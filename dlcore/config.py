"""Experiment configs: frozen dataclasses, checked by one field walker, parsed by tyro.

Usage::

  @dataclasses.dataclass(frozen=True)
  class OptimizerConfig:
    name: str = field("adam", "update rule", choices=("adam", "sgd"))
    lr: float = field(1e-3, "peak learning rate", valid="(0, inf)")

  @dataclasses.dataclass(frozen=True)
  class Config:
    epochs: int = field(10, "passes over the training set", valid="[1, inf)")
    optimizer: OptimizerConfig = field(OptimizerConfig(lr=3e-3), "optimizer")

  config = parse_args(Config, description="Train a classifier.")
  # python train.py --epochs 3 --optimizer.lr 0.01 --config configs/big.py
  validate(config)   # ConfigError: "option optimizer.lr must be positive, got 0.0"

Each field's default, help text, choices and range live in one place, the
dataclass. A field whose default is a frozen dataclass is a section: its
fields become ``--section.name`` flags. ``validate`` walks every field once,
sections included: its type (a float batch size, a string where a tuple of
patterns belongs), its ``choices`` and its ``valid`` range; drivers call it
first, and everything after it trusts the values. Cross-field and
data-dependent checks belong to each experiment's plan
(``dlcore.experiment.plan``).

Config files follow ml_collections (``--config file.py`` calls the file's
``get_config()``), except that ``get_config()`` returns the typed config
itself rather than a dict: a misspelt option fails where it is written, and
command-line flags keep their short names (``--lr``, not ``--config.lr``).
The file supplies the defaults; flags override them, wherever they stand.

Bad command-line input (an unknown flag, a value of the wrong type, a value
outside the choices, a config file that cannot be used) exits with status
2 and one line ``error: ...`` on stderr: before tyro parses (through its
public API), ``command_line_error`` reads the arguments against the
config's options and says in one sentence what is wrong with the first bad
token. Input it finds nothing wrong with is tyro's to parse (and, should
tyro still refuse it, to explain).
"""

import dataclasses
import difflib
import importlib.util
import inspect
import json
import math
import pathlib
import re
import shutil
import sys
import textwrap
import types
import typing
from typing import Annotated, Any, Literal, Sequence, TypeVar

import tyro
from tyro.constructors import (ConstructorRegistry, StructConstructorSpec,
                               StructFieldSpec, StructTypeInfo)

from dlcore.errors import ConfigError

T = TypeVar("T")

# The seeds ``jax.random.PRNGKey`` takes as they are (a larger one wraps
# around to a smaller seed's key; NumPy refuses a negative one).
SEED_RANGE = "[0, 4294967295]"
# Steps a run can count: its step counters are int32.
STEPS_RANGE = "[1, 2147483647]"

# Options that do not change what a run computes: a resumed run may differ
# from the recorded one in these (where it runs, how often it reports and
# saves), and in nothing else.
RUN_OPTIONS = ("resume", "workdir", "data_dir", "devices", "parallel", "mesh",
               "sharding",
               "coordinator_address", "num_processes", "process_id",
               "coordinator_timeout",
               "log_every", "eval_every", "sample_every", "checkpoint_every")


def field(default: Any, help: str, choices: Sequence[str] | None = None,  # pylint: disable=redefined-builtin
          valid: str | None = None):
  """A dataclass field carrying its command-line help text, choices and range.

  ``--help`` appends ``(default: VALUE)`` to ``help``, unless ``help`` ends
  with its own parenthesis about the default, such as ``"devices to use
  (default: all of them)"``: that parenthesis is shown in its place.

  ``valid`` is a numeric option's range in interval notation: ``"(0, inf)"``
  (positive), ``"[1, inf)"``, ``"[0, 1)"``, ``"[0, 4294967295]"``.
  ``--help`` shows it, and ``validate`` refuses a value outside it (NaN
  included); an optional option's None is not checked.
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


# ---------------------------------------------------------------------------
# The field walker.

def _optional(kind: Any) -> tuple[Any, bool]:
  """``(X, True)`` for ``X | None``; ``(kind, False)`` otherwise."""
  if typing.get_origin(kind) in (typing.Union, types.UnionType):
    members = [a for a in typing.get_args(kind) if a is not type(None)]
    if len(members) == 1 and len(typing.get_args(kind)) == 2:
      return members[0], True
  return kind, False


def _type_name(kind: Any) -> str:
  """How a sentence names a type: "an integer", "a tuple of strings"."""
  names = {bool: "true or false", int: "an integer", float: "a number",
           str: "a string"}
  if kind in names:
    return names[kind]
  if typing.get_origin(kind) is tuple:
    element = typing.get_args(kind)[0]
    plural = {str: "strings", float: "numbers", int: "integers"}[element]
    return f"a tuple of {plural}"
  return f"a {kind.__name__}"


def _has_type(value: Any, kind: Any) -> bool:
  if kind is bool:
    return isinstance(value, bool)
  if kind is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if kind is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if kind is str:
    return isinstance(value, str)
  if typing.get_origin(kind) is tuple:
    element = typing.get_args(kind)[0]
    return isinstance(value, tuple) and all(_has_type(v, element)
                                            for v in value)
  return type(value) is kind  # pylint: disable=unidiomatic-typecheck


def _describe_value(value: Any) -> str:
  """A number as itself; anything else with its type: ``'32' (a str)``."""
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return str(value)
  return f"{value!r} (a {type(value).__name__})"


def validate(config: Any, prefix: str = "") -> None:
  """Raises ``ConfigError`` for the first option of ``config`` that is not valid.

  Walks every field once, sections included: the value must have the
  field's type (an int where ``int`` is declared, never a float; a tuple of
  strings, never a string; a section of exactly its declared class), be
  one of its ``choices`` and lie in its ``valid`` range. The sentence
  names the option dotted from ``prefix``: ``option optimizer.lr must be
  positive, got 0.0``.
  """
  hints = typing.get_type_hints(type(config))
  for f in dataclasses.fields(config):
    value, name = getattr(config, f.name), prefix + f.name
    kind, optional = _optional(hints[f.name])
    if value is None and optional:
      continue
    if not _has_type(value, kind):
      if isinstance(value, tuple) and typing.get_origin(kind) is tuple:
        bad = next(v for v in value
                   if not _has_type(v, typing.get_args(kind)[0]))
        raise ConfigError(f"option {name} must be {_type_name(kind)}, got "
                          f"{value!r} (holding {bad!r})")
      raise ConfigError(f"option {name} must be {_type_name(kind)}"
                        + (" or None" if optional else "")
                        + f", got {_describe_value(value)}")
    if dataclasses.is_dataclass(value):
      validate(value, f"{name}.")
      continue
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
      raise ConfigError(f"option {name} must be one of {', '.join(choices)}, "
                        f"got {value!r}")
    if f.metadata.get("valid") is not None:
      interval = Interval.parse(f.metadata["valid"])
      for v in value if isinstance(value, tuple) else (value,):
        if v not in interval:
          unbounded = math.inf in (abs(interval.low), abs(interval.high))
          finite = (" and finite" if unbounded and v in (math.inf, -math.inf)
                    else "")
          raise ConfigError(f"option {name} must be {interval.describe()}"
                            f"{finite}, got {v}")


# ---------------------------------------------------------------------------
# The command line.

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
  """How tyro builds a config: ``choices`` become a ``Literal`` (listed in
  ``--help``), and a help's own parenthesis about the default replaces
  tyro's ``(default: ...)``."""
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


@dataclasses.dataclass(frozen=True)
class _Option:
  """One leaf option as the command line sees it."""
  name: str  # Dotted: "optimizer.lr".
  kind: Any
  optional: bool
  choices: Sequence[str] | None


def _options(config_cls: type, prefix: str = "") -> list[_Option]:
  """Every leaf option of ``config_cls``, sections' dotted, in order."""
  hints = typing.get_type_hints(config_cls)
  found = []
  for f in dataclasses.fields(config_cls):
    kind, optional = _optional(hints[f.name])
    if dataclasses.is_dataclass(kind):
      found += _options(kind, f"{prefix}{f.name}.")
    else:
      found.append(_Option(prefix + f.name, kind, optional,
                           f.metadata.get("choices")))
  return found


def _metavar(option: _Option) -> str:
  name = {int: "INT", float: "FLOAT", str: "STR"}.get(option.kind)
  if typing.get_origin(option.kind) is tuple:
    name = f"{_metavar(_Option('', typing.get_args(option.kind)[0], False, None))} ..."
  return f"{name} or None" if option.optional else name


def _converts(text: str, option: _Option) -> bool:
  if option.optional and text == "None":
    return True
  kind = option.kind
  if typing.get_origin(kind) is tuple:
    kind = typing.get_args(kind)[0]
  try:
    kind(text)
  except ValueError:
    return False
  return True


def command_line_error(config_cls: type, argv: Sequence[str]) -> str | None:
  """One sentence on what is wrong with ``argv`` for ``config_cls``; None if nothing is found.

  It reads ``argv`` as tyro does (``--name VALUE``, ``--name=VALUE``,
  ``--flag`` / ``--no-flag`` for booleans, a tuple option taking the values
  up to the next flag, ``_`` and ``-`` alike in names) and names the first
  unknown flag (with the closest known one), missing value, value that is
  not of the option's type, value outside the option's choices or
  unexpected positional argument.
  """
  options = {flag(o.name): o for o in _options(config_cls)}
  negations = {flag(o.name.rpartition(".")[0] + ("." if "." in o.name else "")
                    + "no_" + o.name.rpartition(".")[2]): o
               for o in options.values() if o.kind is bool}
  known = ["--config", "--help"] + sorted(options) + sorted(negations)
  i = 0
  while i < len(argv):
    token = argv[i]
    i += 1
    if not token.startswith("--"):
      return f"unexpected argument {token!r}; see --help for the options"
    name, equals, inline = token.partition("=")
    name = "--" + name[2:].replace("_", "-")
    if name == "--config":
      i += 0 if equals else 1
      continue
    option = options.get(name) or negations.get(name)
    if option is None:
      close = difflib.get_close_matches(name, known, n=1)
      return f"unrecognized option {name}; " + (
          f"did you mean {close[0]}?" if close else "see --help for the options")
    if option.kind is bool:
      if equals:
        return f"{name} takes no value, got {inline!r}"
      continue
    if equals:
      values = [inline]
    else:
      values = []
      while i < len(argv) and not argv[i].startswith("--"):
        values.append(argv[i])
        i += 1
        if typing.get_origin(option.kind) is not tuple:
          break
    if not values and typing.get_origin(option.kind) is not tuple:
      return f"{name} expects a value ({_metavar(option)})"
    for value in values:
      if option.choices is not None and value not in option.choices:
        return (f"invalid choice: {value!r} for {name}; choose one of "
                f"{', '.join(option.choices)}")
      if not _converts(value, option):
        return f"{name} expects {_metavar(option)}, got {value!r}"
  return None


def load_config_file(path: str | pathlib.Path, config_cls: type[T]) -> T:
  """The ``config_cls`` returned by ``get_config()`` of the Python file ``path``.

  Raises:
    ConfigError: one sentence naming the file and what is wrong with it:
      missing, a directory, a syntax error, an import that fails or exits,
      no ``get_config``, a ``get_config`` that takes arguments or raises, or
      one that returns anything but a ``config_cls`` itself (a subclass is
      another experiment).
  """
  path = pathlib.Path(path)
  where = f"config file {str(path)!r}"
  if path.is_dir():
    raise ConfigError(f"{where} is a directory; give a Python file whose "
                      f"get_config() returns a {config_cls.__name__}")
  if not path.is_file():
    raise ConfigError(f"{where} does not exist")
  spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f"{where} has a syntax error at line {e.lineno}: "
                      f"{e.msg}") from None
  except SystemExit:
    raise ConfigError(f"{where} calls sys.exit() when it is loaded; a config "
                      "file should only define get_config()") from None
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"{where} cannot be loaded: {type(e).__name__}: "
                      f"{_first_line(e)}") from None
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"{where} defines no get_config(); it should "
                      f"return a {config_cls.__name__}")
  try:
    inspect.signature(get_config).bind()
  except TypeError:
    raise ConfigError(f"get_config() of {str(path)!r} must take no "
                      "arguments") from None
  try:
    config = get_config()
  except SystemExit:
    raise ConfigError(f"get_config() of {str(path)!r} calls sys.exit(); it "
                      f"should return a {config_cls.__name__}") from None
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"get_config() of {str(path)!r} raised "
                      f"{type(e).__name__}: {_first_line(e)}") from None
  if type(config) is not config_cls:  # pylint: disable=unidiomatic-typecheck
    raise ConfigError(f"get_config() of {str(path)!r} returned a "
                      f"{type(config).__name__}, not a {config_cls.__name__}")
  try:
    validate(config)
  except ConfigError as e:
    raise ConfigError(f"get_config() of {str(path)!r} returned a config "
                      f"whose {str(e).removeprefix('option ')}") from None
  return config


def _first_line(error: BaseException) -> str:
  return (str(error).strip().splitlines() or [""])[0][:200]


def _config_file_argument(argv: Sequence[str]) -> str | None:
  """The value of the last ``--config FILE`` (or ``--config=FILE``) in ``argv``."""
  path = None
  for i, token in enumerate(argv):
    if token == "--config":
      if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
        raise ConfigError("--config expects a value (FILE)")
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


def parse_args(config_cls: type[T], description: str,
               argv: Sequence[str] | None = None) -> T:
  """Parses ``argv`` (default: ``sys.argv[1:]``) into a ``config_cls``.

  ``--config FILE`` supplies the defaults (see ``load_config_file``); the
  other flags override them. ``--help`` prints every option and exits 0;
  bad input prints one line ``error: ...`` to stderr and exits with status
  2. The values are not validated here: the driver calls ``validate``.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    path = _config_file_argument(argv)
    defaults = (config_cls() if path is None
                else load_config_file(path, config_cls))
    command = _command(config_cls, defaults)
    options = dict(description=_terminal_text(description), args=argv,
                   registry=_REGISTRY)
    if "-h" in argv or "--help" in argv:
      return tyro.cli(command, **options)  # Prints the help, exits 0.
    sentence = command_line_error(config_cls, argv)
    if sentence is not None:
      raise ConfigError(sentence)
    return tyro.cli(command, **options)  # Its own message for the rest.
  except ConfigError as e:  # Also from the config's own checks.
    print(f"error: {with_flags(str(e))}", file=sys.stderr)
    sys.exit(2)


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


def _leaves(tree: dict[str, Any], prefix: str = ""):
  """(dotted name, value) of every non-dict leaf of a nested dict, in order."""
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


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
