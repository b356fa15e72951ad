"""tfds_build.py: a TFDS dataset's sources are checked before it is built, and one
process builds while another waits and reads its build."""

import hashlib
import shutil
import subprocess
import sys
import textwrap
import time
import types

import pytest

from pixelrnn.data import loading as data_lib
from pixelrnn.data import tfds_build

CIFAR_ARCHIVE = "cifar-10-binary.tar.gz (170052171 bytes)"


def unreachable(host):
  return False


def test_cifar10_offline_without_manual_dir_says_at_once_what_is_missing(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds_build, "_reachable", unreachable)
  start = time.monotonic()
  with pytest.raises(tfds_build.SourceError) as raised:
    data_lib.load_tfds("cifar10", "train", data_dir=str(tmp_path))
  assert time.monotonic() - start < 30, "no download retries"
  assert str(raised.value) == (
    "Dataset cifar10 is not built yet, www.cs.toronto.edu cannot be reached to download it, "
    f"and no --config.data.manual_dir was given: put {CIFAR_ARCHIVE} in a folder and pass "
    "--config.data.manual_dir=<that folder>."
  )
  # A manual_dir without the archive is named as the place it is missing from.
  with pytest.raises(tfds_build.SourceError, match=f"not in --config.data.manual_dir '{tmp_path}'"):
    data_lib.load_tfds("cifar10", "train", data_dir=str(tmp_path), manual_dir=str(tmp_path))


def test_a_truncated_archive_in_manual_dir_is_named_as_not_the_expected_archive(tmp_path):
  (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"\x1f\x8b" + bytes(1000))
  with pytest.raises(
    tfds_build.SourceError,
    match=r"cifar-10-binary.tar.gz is 1002 bytes, expected 170052171: it is not "
    r"the cifar10 source archive \(truncated, or another file\)\.",
  ):
    data_lib.load_tfds(
      "cifar10", "train", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path)
    )


def test_a_file_of_the_right_size_but_other_bytes_is_refused_by_its_sha256(tmp_path):
  content = b"not the labels"
  info = types.SimpleNamespace(
    size=len(content), checksum=hashlib.sha256(b"labels").hexdigest(), filename="labels.gz"
  )
  (tmp_path / "labels.gz").write_bytes(content)
  sources = {"https://example.org/labels.gz": info}
  with pytest.raises(
    tfds_build.SourceError,
    match=f"labels.gz has sha256 {hashlib.sha256(content).hexdigest()}, expected "
    f"{info.checksum}: it is not the toy source archive.",
  ):
    tfds_build.check_sources("toy", sources, str(tmp_path), reachable=unreachable)
  # The right bytes pass without the network; a missing file needs a reachable host.
  (tmp_path / "labels.gz").write_bytes(b"labels")
  info.size = 6
  tfds_build.check_sources("toy", sources, str(tmp_path), reachable=unreachable)
  tfds_build.check_sources("toy", sources, None, reachable=lambda host: host == "example.org")
  with pytest.raises(
    tfds_build.SourceError, match=r"example.org cannot be reached.*labels.gz \(6 bytes\)"
  ):
    tfds_build.check_sources("toy", sources, None, reachable=unreachable)


BUILD = textwrap.dedent("""
    import sys
    import numpy as np
    from pixelrnn.data import loading
    images = loading.load_tfds("mnist", "test", data_dir=sys.argv[1], manual_dir=sys.argv[2]).images
    print(images.shape[0], int(images.astype(np.int64).sum()))
""")


def test_two_processes_building_one_dataset_in_one_data_dir_both_read_one_build(
  tmp_path, shared_data
):
  manual_dir = tmp_path / "manual"
  shutil.copytree(shared_data / "mnist", manual_dir)
  data_dir = tmp_path / "tfds"
  builds = [
    subprocess.Popen(
      [sys.executable, "-c", BUILD, str(data_dir), str(manual_dir)],
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for _ in range(2)
  ]
  results = [build.communicate(timeout=600) for build in builds]
  for build, (_, err) in zip(builds, results):
    assert build.returncode == 0, err[-2000:]
  outputs = [out.splitlines()[-1].split() for out, _ in results]  # TFDS prints above.
  assert outputs[0] == outputs[1] and outputs[0][0] == "10000"
  # One build: one prepared version folder, and no leftover temporary folders beside it.
  assert [p.name for p in (data_dir / "mnist").iterdir()] == ["3.0.1"]
