"""One writer per workdir: a lock file naming the training run that holds it.

`WorkdirLock(workdir)` creates workdir/lock atomically with the holder's pid, host and
start time, and removes it on exit. A second run finds the file and fails at once,
naming the holder. A lock whose holder is a process of this host that no longer exists
(killed, say, with SIGKILL) is taken over with a warning. Reading a workdir
(evaluation, sampling) takes no lock.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from collections.abc import Callable

from pixelrnn import errors

LOCK_FILE = "lock"


class WorkdirLockedError(errors.UserError, RuntimeError):
  """Another live run holds the workdir."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by another user.
    return True
  return True


class WorkdirLock:
  """Context manager holding workdir/lock for this process."""

  def __init__(self, workdir: str, warn: Callable[[str], None] = print):
    self.path = os.path.join(workdir, LOCK_FILE)
    self.warn = warn
    self.holder = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      json.dump(self.holder, f)
    return True

  def _read(self) -> dict:
    try:
      with open(self.path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return {}

  def __enter__(self) -> "WorkdirLock":
    if self._create():
      return self
    other = self._read()
    pid, host = other.get("pid"), other.get("host")
    if host == self.holder["host"] and isinstance(pid, int) and not _alive(pid):
      # Replace the dead holder's file in one step, then check that ours won.
      tmp = f"{self.path}.{os.getpid()}.tmp"
      with open(tmp, "w") as f:
        json.dump(self.holder, f)
      os.replace(tmp, self.path)
      if self._read() == self.holder:
        self.warn(
          f"Took over the lock of workdir {os.path.dirname(self.path)!r} from pid {pid}, "
          f"which no longer runs (started {other.get('started')})."
        )
        return self
      other = self._read()
    raise WorkdirLockedError(
      f"Workdir {os.path.dirname(self.path)!r} is in use by pid {other.get('pid')} on host "
      f"{other.get('host')!r} since {other.get('started')} (lock file {self.path}). Use another "
      f"--workdir, or delete the lock file if that run is gone."
    )

  def __exit__(self, *exc_info) -> None:
    if self._read() == self.holder:
      os.remove(self.path)
