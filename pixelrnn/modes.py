"""What `launch.py --mode=...` does: train, eval, sample or inpaint, for a workdir or for
a pretrained model. Each function returns the result the command prints as JSON."""

from __future__ import annotations

import dataclasses
import os
import signal

from pixelrnn import pretrained
from pixelrnn.sampling import figures
from pixelrnn.training import distributed, stopping, train

MODES = ("train", "eval", "sample", "inpaint")


@dataclasses.dataclass(frozen=True)
class FigureOptions:
  """--mode=sample and inpaint: what to draw (see launch.py's flags)."""

  num_samples: int = 16
  label: int | None = None
  num_completions: int = 4
  observed_rows: int | None = None
  temperature: float = 1.0
  seed: int = 0


def write_figure(
  mode: str, config, workdir: str, options: FigureOptions, source=None, prefix: str = ""
) -> dict:
  """The sample grid or completion figure of the EMA parameters in `workdir`, or of
  `source` (a pretrained model's (model, params, step)), whose file is named by `prefix`."""
  if mode == "sample":
    path = os.path.join(workdir, f"{prefix}samples_{source[2]}.png") if prefix else None
    return figures.write_samples(
      config,
      workdir,
      num_samples=options.num_samples,
      temperature=options.temperature,
      seed=options.seed,
      label=options.label,
      path=path,
      source=source,
    )
  path = os.path.join(workdir, f"{prefix}completions_{source[2]}.png") if prefix else None
  return figures.write_completions(
    config,
    workdir,
    num_images=options.num_samples,
    num_completions=options.num_completions,
    observed_rows=options.observed_rows,
    temperature=options.temperature,
    seed=options.seed,
    path=path,
    source=source,
  )


def run_pretrained(
  mode: str, loaded: pretrained.Loaded, out_dir: str, options: FigureOptions
) -> dict:
  """Evaluates a pretrained model on the test split, or draws its figure in `out_dir`."""
  config = loaded.config
  config.data.eval_split = "test"
  if mode == "eval":
    result = {
      "eval_split": "test",
      **train.evaluate_params(config, loaded.params, validated=True),  # By pretrained.load.
      "step": loaded.step,
    }
  else:
    os.makedirs(out_dir, exist_ok=True)
    result = write_figure(mode, config, out_dir, options, loaded.source(), f"{loaded.name}_")
  return {"mode": mode, "pretrained": loaded.name, **result}


def run_workdir(
  mode: str, config, workdir: str, options: FigureOptions, samples_after_training: int
) -> dict:
  """Trains (resuming) and evaluates, evaluates, or draws the figure of `workdir`. A
  finished training also writes a grid of `samples_after_training` samples (0: none)."""
  if mode in ("sample", "inpaint"):
    result = write_figure(mode, config, workdir, options)
  elif mode == "train":
    with stopping.StopRequests() as stop_requests:
      metrics = train.train_and_evaluate(config, workdir, should_stop=stop_requests)
    result = {"eval_split": config.data.eval_split, **metrics}
    if samples_after_training > 0:
      # The config was validated by the training: the grid's restore need not again.
      source = train.load_ema_params(config, workdir, validated=True)
      samples = figures.write_samples(
        config, workdir, num_samples=samples_after_training, source=source
      )
      distributed.primary_only(print)(f"Samples: {samples['png']}")
      result["samples_png"] = samples["png"]
  else:
    result = {"eval_split": config.data.eval_split, **train.evaluate_checkpoint(config, workdir)}
  return {"mode": mode, **result}


def exit_status(stopped: stopping.TrainingStopped) -> int:
  """128 + the signal's number for a run a signal stopped (the shell's status for a
  process ended by it, so a scheduler sees the run did not finish and may requeue it); 1
  for any other stop."""
  signum = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}.get(stopped.reason)
  return 1 if signum is None else 128 + signum
