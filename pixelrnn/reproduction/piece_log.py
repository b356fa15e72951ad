"""The pieces log of a row (workdir/reproduce_pieces.jsonl): one line per piece of
training, rewritten at every checkpoint, and what the curve says (plateau)."""

from __future__ import annotations

import datetime
import json
import os
import time

PIECES_FILE = "reproduce_pieces.jsonl"


def read_pieces(workdir: str) -> list[dict]:
  path = os.path.join(workdir, PIECES_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _write_pieces(workdir: str, pieces: list[dict]) -> None:
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, PIECES_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(piece) + "\n" for piece in pieces)
  os.replace(tmp, path)


class PieceLog:
  """This piece's line of workdir/reproduce_pieces.jsonl, rewritten at every `update`.

  Fields: command, started, wall_s and cpu_s (this process's CPU time, all threads),
  from_step, to_step (the last checkpoint), eval_split, outcome, hardware.
  """

  def __init__(self, workdir: str, *, command: str, from_step: int, eval_split: str, hardware: str):
    self.workdir = workdir
    self._clock, self._cpu = time.perf_counter(), time.process_time()
    self.piece = {
      "command": command,
      "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "wall_s": 0.0,
      "cpu_s": 0.0,
      "from_step": from_step,
      "to_step": from_step,
      "eval_split": eval_split,
      "outcome": "running",
      "hardware": hardware,
    }
    self._earlier = None  # The lines of earlier pieces, read at the first update.

  def update(self, step: int, outcome: str = "running") -> None:
    """Records that the piece reached checkpoint `step` (or ended, with `outcome`)."""
    if self._earlier is None:
      # Read once the piece holds the workdir's lock (its first checkpoint): an earlier
      # piece still "running" is one that was killed after its last checkpoint.
      self._earlier = [
        {**p, "outcome": f"killed after its checkpoint at step {p['to_step']}"}
        if p.get("outcome") == "running"
        else p
        for p in read_pieces(self.workdir)
      ]
    self.piece.update(
      wall_s=round(time.perf_counter() - self._clock, 1),
      cpu_s=round(time.process_time() - self._cpu, 1),
      to_step=step,
      outcome=outcome,
    )
    _write_pieces(self.workdir, self._earlier + [self.piece])


def eval_split(pieces: list[dict]) -> str:
  """The split the latest piece that names one evaluated on ("eval" if none does)."""
  return next((p["eval_split"] for p in reversed(pieces) if "eval_split" in p), "eval")


def totals(pieces: list[dict]) -> dict:
  """Wall and CPU seconds over `pieces` (CPU time None if a piece did not record it)."""
  cpu = [p.get("cpu_s") for p in pieces]
  return {
    "wall_s": round(sum(p["wall_s"] for p in pieces), 1),
    "cpu_s": None if None in cpu else round(sum(cpu), 1),
  }


PLATEAU_WINDOW_STEPS = 30_000
PLATEAU_MIN_GAIN = 0.1  # Nats over the window: less, and the row has stopped improving.


def plateau(
  curve, window: int = PLATEAU_WINDOW_STEPS, min_gain: float = PLATEAU_MIN_GAIN
) -> float | None:
  """The NLL gained over the last `window` steps of an evaluation curve ((step, NLL),
  in step order) when it is under `min_gain`: the row has stopped improving and should
  be argued from its curve, not trained on. None while it improves, or while the curve
  is shorter than the window."""
  if not curve or curve[-1][0] - curve[0][0] < window:
    return None
  last_step = curve[-1][0]
  before = [nll for step, nll in curve if step <= last_step - window][-1]
  gain = before - min(nll for step, nll in curve if step > last_step - window)
  return gain if gain < min_gain else None
