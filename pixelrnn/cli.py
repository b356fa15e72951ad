"""The command-line layer that `launch.py` and the experiment scripts share.

- `run(main)`: absl's `app.run`, with every user error (`errors.UserError`, a bad flag,
  a config file that does not load, an unknown config key) reported as one line,
  `Error: <message>`, and exit status 2, instead of a traceback; library INFO logs
  (orbax, absl, TensorFlow) hidden unless `--library_logs` is given.
- `load_config(path)`: a config file's `get_config()`, or a `ConfigFileError` in one line.
- `fail(message)`: the one-line report itself.
- `split_cpu(configs)`: a CPU host as one device per core for these configs' batches
  (`--cpu_devices`; `training/cpu_devices.py`), before JAX starts.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Callable
from typing import NoReturn

import ml_collections
from absl import app, flags, logging

from pixelrnn import defaults, errors
from pixelrnn.training import cpu_devices

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml")

flags.DEFINE_bool(
  "library_logs",
  False,
  "Show the INFO logs of the libraries (orbax, absl, TensorFlow), which are hidden by default.",
)
flags.DEFINE_integer(
  "cpu_devices",
  None,
  "Devices a CPU host is presented as, each training on its part of every batch "
  "(default: one per core, as many as divide the batch sizes; 1: one device, its "
  "operations spread over the cores). No effect on an accelerator.",
  lower_bound=1,
)


class ConfigFileError(errors.UserError, ValueError):
  """A config file is missing or raised while loading."""


def load_config(spec: str, *args: str) -> ml_collections.ConfigDict:
  """`get_config(*args)` of the config file `spec`: a path, or "path:arg" as
  ml_collections' config flags take it (`get_config("arg")`, e.g. a rows file's recipe)."""
  path, _, arg = spec.partition(".py:")
  path, args = (path + ".py", (arg, *args)) if arg else (spec, args)
  if not os.path.isfile(path):
    raise ConfigFileError(
      f"--config={spec!r}: no such file; expected a config file such as configs/quickstart.py."
    )
  try:
    return runpy.run_path(path)["get_config"](*args)
  except Exception as e:  # Whatever the file raises, the user needs its type and message.
    raise ConfigFileError(f"--config={spec!r} could not be loaded: {type(e).__name__}: {e}") from e


def split_cpu(configs) -> int | None:
  """Presents the CPU as `--cpu_devices` devices (by default one per core, as many as
  divide the configs' batch sizes); call before JAX starts. Returns the count, or None
  where XLA_FLAGS or JAX's config had set one."""
  sizes = [size for c in configs for size in (c.training.batch_size, c.training.eval_batch_size)]
  return cpu_devices.configure(sizes, flags.FLAGS.cpu_devices)


def fail(message: str, status: int = 2) -> NoReturn:
  print(f"Error: {message}", file=sys.stderr, flush=True)
  sys.exit(status)


def quiet_library_logs() -> None:
  logging.set_verbosity(logging.WARNING)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow is first imported.


def flag_value(argv: list[str], name: str) -> str | None:
  """The value of --name=value or --name value in argv (the last one given)."""
  value = None
  for k, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and k + 1 < len(argv):
      value = argv[k + 1]
  return value


def config_flag_error(argv: list[str]) -> str | None:
  """The one-line message for a --config file or --config.* override that absl would
  report with a traceback: a missing or unloadable file, or an unknown key."""
  path = flag_value(argv, "config")
  if path is None:
    return None  # absl reports a missing required flag itself.
  try:
    config = load_config(path)
    for arg in argv:
      if arg.startswith("--config."):
        try:
          defaults.check_key_path(config, arg.removeprefix("--config.").split("=", 1)[0])
        except defaults.ConfigError as e:
          return f"{arg}: {e}"
  except ConfigFileError as e:
    return str(e)
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e))


def run(main: Callable[[list[str]], None]) -> None:
  """Runs `main(argv)` as absl's `app.run` does, reporting user errors in one line."""
  argv = sys.argv
  if any(arg in HELP_FLAGS for arg in argv[1:]):
    try:
      app.run(main)
    except SystemExit:
      sys.exit(0)  # absl exits 1 after printing the help that was asked for.
  error = config_flag_error(argv[1:])
  if error is not None:
    fail(error)

  def guarded(argv: list[str]) -> None:
    if len(argv) > 1:
      fail(f"unexpected arguments {argv[1:]}; flags are given as --name=value.")
    if not flags.FLAGS.library_logs:
      quiet_library_logs()
    try:
      main(argv)
    except errors.UserError as e:
      fail(str(e), e.exit_status)
    except app.UsageError as e:  # What a script raises for a bad flag combination.
      fail(str(e))

  app.run(guarded, flags_parser=_parse_flags)
