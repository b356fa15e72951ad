"""Checkpoints of a workdir: orbax's manager of workdir/checkpoints, atomic synchronous
saves, restore, and workdir/config.json, which pins the model and dataset a workdir's
checkpoints were written for."""

from __future__ import annotations

import json
import os
from typing import Callable

import ml_collections
import orbax.checkpoint as ocp

from pixelrnn import defaults, errors


class CheckpointError(errors.UserError, RuntimeError):
  """A checkpoint is missing or does not match the configuration, or a workdir is unusable."""


class CheckpointSaveError(errors.UserError, RuntimeError):
  """Writing a checkpoint failed; the previous complete checkpoint is untouched."""


def manager(workdir: str, config) -> ocp.CheckpointManager:
  """Orbax's manager of workdir/checkpoints. Saves are synchronous: a failed write
  raises at once (the checkpoints here are megabytes, so little is lost by waiting)."""
  options = ocp.CheckpointManagerOptions(
    max_to_keep=config.training.max_checkpoints_to_keep,
    create=True,
    enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(
    os.path.join(os.path.abspath(workdir), "checkpoints"), options=options
  )


def save(manager: ocp.CheckpointManager, step: int, state, force: bool = False) -> None:
  """Saves `state` as checkpoint `step`; a failure raises CheckpointSaveError naming it."""
  previous = manager.latest_step()
  try:
    manager.save(step, args=ocp.args.StandardSave(state), force=force)
    manager.wait_until_finished()
  except Exception as e:  # Orbax raises many types (OSError, ValueError, its own).
    kept = (
      f"the last complete checkpoint, step {previous}, is intact"
      if previous is not None
      else "no earlier checkpoint exists"
    )
    raise CheckpointSaveError(
      f"Saving the checkpoint of step {step} in {manager.directory} failed "
      f"({type(e).__name__}: {e}); {kept}. Fix the cause and rerun to resume."
    ) from e


def check_workdir(workdir: str) -> None:
  """Raises CheckpointError unless `workdir` is a directory or does not exist yet."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise CheckpointError(
      f"--workdir {workdir!r} is a file, expected a directory (new or one "
      f"written by an earlier run)."
    )


def _flatten(prefix: str, group) -> dict:
  flat = {}
  for k, v in group.items():
    if isinstance(v, (dict, ml_collections.ConfigDict)):
      flat.update(_flatten(f"{prefix}{k}.", v))
    else:
      flat[f"{prefix}{k}"] = v
  return flat


# Model keys that choose how the model computes, not its parameters.
_COMPUTATION_KEYS = ("pallas_lstm",)


def _model_identity(config) -> dict:
  """The parts of a config that fix the shapes in a checkpoint, as flat dotted keys."""
  model = {
    key: value
    for key, value in _flatten("model.", config.model).items()
    if key.rsplit(".", 1)[-1] not in _COMPUTATION_KEYS
  }
  return {"data.name": config.data.name, **model}


def record_or_check_config(workdir: str, config, write: bool = True) -> None:
  """Records the config in workdir/config.json, or checks it against the recorded one.

  Training settings may change between runs (to train longer, say); the dataset and
  model may not, since the checkpoint's shapes depend on them. With `write` False
  (processes other than 0 of a multi-process run) a missing record is left to others.
  """
  path = os.path.join(workdir, "config.json")
  current = _model_identity(config)
  if os.path.exists(path):
    with open(path) as f:
      recorded_json = json.load(f)
    # Keys added to the schema after the run started take their defaults.
    recorded = _model_identity(defaults.base_config())
    recorded.update(
      _model_identity(
        ml_collections.ConfigDict(
          {group: recorded_json.get(group, {}) for group in ("data", "model")}
        )
      )
    )
    differing = {
      k: (recorded.get(k), current.get(k))
      for k in set(recorded) | set(current)
      if recorded.get(k) != current.get(k)
    }
    if differing:
      raise CheckpointError(
        f"The checkpoints in {workdir!r} were written for a different model or dataset; "
        f"(recorded, requested) values: {differing}. Use a new --workdir."
      )
    return
  if not write:
    return
  os.makedirs(workdir, exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json(indent=2))
  os.replace(tmp, path)


def restore(manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """Checkpoint `step` (default: the latest) of `manager`, in the structure, shapes and
  shardings of `abstract_state` (e.g. `Trainer.abstract_state()`)."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(f"No checkpoint found in {manager.directory}.")
  try:
    return _restore(manager, abstract_state, step)
  except Exception as e:  # Orbax and tensorstore raise many types for one unreadable file.
    raise CheckpointError(
      f"Checkpoint {step} in {manager.directory} cannot be restored for this config: {_cause(e)}"
    ) from e


def restore_newest_intact(
  manager: ocp.CheckpointManager,
  abstract_state,
  *,
  warn: Callable[[str], None],
  set_aside: bool = False,
):
  """The newest checkpoint of `manager` that restores into `abstract_state`.

  A newer checkpoint that cannot be read (a truncated or missing file) is named to
  `warn` with its cause and never deleted: with `set_aside` (a run that will write
  checkpoints again) it is moved to workdir/corrupt_checkpoints/<step>, so that the
  run can write that step anew; otherwise it stays where it is. Raises CheckpointError,
  naming each checkpoint's cause, when none restores.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    raise CheckpointError(f"No checkpoint found in {manager.directory}.")
  failures = []
  for step in steps:
    try:
      state = _restore(manager, abstract_state, step)
    except Exception as e:  # As in `restore`.
      failures.append((step, _cause(e)))
      continue
    for bad_step, cause in failures:
      where = f"moved to {_set_aside(manager, bad_step)}" if set_aside else "left where it is"
      warn(
        f"checkpoint {bad_step} in {manager.directory} cannot be read ({cause}); it is "
        f"{where}. Using checkpoint {step}, the newest intact one."
      )
    if failures:
      manager.reload()
    return state
  if len(failures) == 1:
    ((step, cause),) = failures
    raise CheckpointError(
      f"Checkpoint {step} in {manager.directory} cannot be restored for this config: {cause}"
    )
  causes = "; ".join(f"checkpoint {step}: {cause}" for step, cause in failures)
  raise CheckpointError(
    f"No checkpoint in {manager.directory} can be restored for this config: {causes}"
  )


def _restore(manager, abstract_state, step):
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))


def _cause(error: Exception, limit: int = 300) -> str:
  """An exception as one short line (tensorstore appends kilobytes of its spec)."""
  text = " ".join(str(error).split()).split(" [tensorstore_spec")[0]
  text = f"{type(error).__name__}: {text}"
  return text if len(text) <= limit else text[: limit - 3] + "..."


def _set_aside(manager: ocp.CheckpointManager, step: int) -> str:
  """Moves checkpoint `step` to <workdir>/corrupt_checkpoints/<step>[.n]; its new path."""
  source = os.path.join(str(manager.directory), str(step))
  folder = os.path.join(os.path.dirname(str(manager.directory).rstrip("/")), "corrupt_checkpoints")
  os.makedirs(folder, exist_ok=True)
  target, n = os.path.join(folder, str(step)), 1
  while os.path.exists(target):
    target, n = os.path.join(folder, f"{step}.{n}"), n + 1
  os.replace(source, target)
  return target


def require_checkpoints(workdir: str) -> None:
  """Raises CheckpointError unless `workdir` holds a checkpoints folder."""
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise CheckpointError(f"No checkpoints in workdir {workdir!r}: train there first.")
