"""Building a TFDS dataset before it is first read: its sources checked first, one
build at a time per data_dir.

TFDS left alone fails late and loudly: offline with no `manual_dir` it retries a
download for minutes and ends in a `ConnectionError`; a truncated archive in
`manual_dir` ends in a `NonMatchingChecksumError`; two processes building one
dataset in one data_dir race, and the loser's rename raises `FileExistsError`.
`prepared_builder` checks the sources TFDS records for the builder (file names, sizes,
sha256) before it builds, and holds a lock file in the data_dir while building, so a
second process waits and then reads the first one's build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import urllib.parse

from pixelrnn import errors

# Seconds to wait for a connection to a download host before calling it unreachable.
PROBE_TIMEOUT_S = 5.0


class SourceError(errors.UserError, ValueError):
  """A dataset's source files are missing, unreachable or not the expected ones."""


def prepared_builder(name: str, data_dir: str | None, manual_dir: str | None):
  """TFDS's builder of dataset `name` in `data_dir`, built first unless it is: at most one
  process per data_dir builds at a time, its sources checked first (see the module
  docstring). Raises SourceError when a source is neither in `manual_dir` as TFDS
  records it nor downloadable."""
  import tensorflow_datasets as tfds

  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  with build_lock(os.path.dirname(os.path.dirname(builder.data_dir)), name):
    builder = tfds.builder(name, data_dir=data_dir)  # Reads a build finished meanwhile.
    if not builder.is_prepared():
      check_sources(name, builder.url_infos or {}, manual_dir)
      builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
      )
  return builder


@contextlib.contextmanager
def build_lock(data_dir: str, name: str):
  """Holds an exclusive lock on data_dir/.<name>.build.lock (blocking until free)."""
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f".{name}.build.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def check_sources(name: str, url_infos: dict, manual_dir: str | None, reachable=None) -> None:
  """Raises SourceError unless every source of dataset `name` ({url: UrlInfo(size,
  checksum, filename)}) is in `manual_dir` as recorded, or can be downloaded.

  A file in `manual_dir` under a source's name must have its size and sha256 (a
  truncated or different file is named); a source not there needs its host reachable
  (`reachable(host)`, default: a TCP connection within PROBE_TIMEOUT_S).
  """
  reachable = reachable or _reachable
  missing = []
  for url, info in sorted(url_infos.items()):
    filename = info.filename or os.path.basename(urllib.parse.urlparse(url).path)
    if manual_dir is not None and os.path.exists(os.path.join(manual_dir, filename)):
      _check_file(os.path.join(manual_dir, filename), name, info)
    else:
      missing.append((url, filename, info))
  unreachable = [
    (url, filename, info)
    for url, filename, info in missing
    if not reachable(urllib.parse.urlparse(url).hostname)
  ]
  if unreachable:
    files = ", ".join(f"{filename} ({int(info.size)} bytes)" for _, filename, info in unreachable)
    hosts = sorted({urllib.parse.urlparse(url).hostname for url, _, _ in unreachable})
    where = (
      f"not in --config.data.manual_dir {manual_dir!r}"
      if manual_dir is not None
      else "no --config.data.manual_dir was given"
    )
    raise SourceError(
      f"Dataset {name} is not built yet, {', '.join(hosts)} cannot be reached to download "
      f"it, and {where}: put {files} in a folder and pass "
      f"--config.data.manual_dir=<that folder>."
    )


def _check_file(path: str, name: str, info) -> None:
  size = os.path.getsize(path)
  expected_size = int(info.size)
  if size != expected_size:
    raise SourceError(
      f"{path} is {size} bytes, expected {expected_size}: it is not the "
      f"{name} source archive (truncated, or another file)."
    )
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  if info.checksum and digest.hexdigest() != info.checksum:
    raise SourceError(
      f"{path} has sha256 {digest.hexdigest()}, expected {info.checksum}: it "
      f"is not the {name} source archive."
    )


def _reachable(host: str | None) -> bool:
  if not host:
    return False
  try:
    socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
  except OSError:  # Includes name resolution failures and timeouts.
    return False
  return True
