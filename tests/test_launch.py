"""The command line: train, then evaluate, a few steps; bad configs fail clearly."""

import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from pixelrnn import cli
from pixelrnn.data import loading
from pixelrnn.training import stopping
from pixelrnn.training import trainer as trainer_lib
from pixelrnn.workdir import checkpoints

FEW_STEPS = [
  "--config.training.num_steps=4",
  "--config.training.checkpoint_every_steps=2",
  "--config.training.eval_batch_size=1000",
  "--config.data.eval_split=validation",
  "--config.model.num_layers=1",
  "--config.training.log_every_steps=2",
  "--samples_after_training=0",
]


def launch(*args):
  return subprocess.run(
    [sys.executable, "launch.py", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
  )


def last_json(stdout):
  return json.loads(stdout.strip().splitlines()[-1])


def test_launch_trains_then_evaluates_the_same_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  trained = launch(
    "--config=configs/quickstart.py",
    f"--workdir={workdir}",
    *FEW_STEPS,
    "--samples_after_training=8",
  )
  assert trained.returncode == 0, trained.stderr[-3000:]
  # A finished run leaves a sample grid without being asked, and says where.
  samples = last_json(trained.stdout)["samples_png"]
  assert f"Samples: {samples}" in trained.stdout
  assert np.asarray(Image.open(samples)).shape == (2 + 56 + 2, 8 * (56 + 2) + 2)
  # Only the project's own lines: no INFO lines of absl, orbax or TensorFlow.
  for line in (trained.stdout + trained.stderr).replace("\r", "\n").splitlines():
    assert not re.match(r"^[IW]\d{4} |^INFO|oneDNN|orbax|absl", line), line
  evaluated = launch(
    "--config=configs/quickstart.py", f"--workdir={workdir}", "--mode=eval", *FEW_STEPS
  )
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  t, e = last_json(trained.stdout), last_json(evaluated.stdout)
  assert e["step"] == 4 and e["nll_nats"] == t["nll_nats"]
  assert (tmp_path / "run" / "checkpoints" / "4").is_dir()
  assert (tmp_path / "run" / "tensorboard" / "train").is_dir()

  sampled = launch(
    "--config=configs/quickstart.py",
    f"--workdir={workdir}",
    "--mode=sample",
    "--num_samples=6",
    *FEW_STEPS,
  )
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  png = last_json(sampled.stdout)["png"]
  picture = np.asarray(Image.open(png))
  # 6 samples in one row of 6 columns, 28x28 upscaled 2x, 2-pixel gaps.
  assert picture.shape == (2 + 56 + 2, 6 * (56 + 2) + 2)
  assert set(np.unique(picture[2:58, 2:58])) <= {0, 255}, "binary samples"

  inpainted = launch(
    "--config=configs/quickstart.py",
    f"--workdir={workdir}",
    "--mode=inpaint",
    "--num_samples=3",
    "--num_completions=2",
    "--observed_rows=10",
    *FEW_STEPS,
  )
  assert inpainted.returncode == 0, inpainted.stderr[-3000:]
  result = last_json(inpainted.stdout)
  figure = np.asarray(Image.open(result["png"]))
  # 3 rows of [occluded, 2 completions, original], from images spread over the split.
  assert figure.shape == (3 * (56 + 2) + 2, 4 * (56 + 2) + 2)
  assert result["observed_rows"] == 10 and result["test_indices"] == [0, 5000, 9999]
  validation = loading.load_binarized_mnist("validation").images
  for row, index in enumerate(result["test_indices"]):
    top = 2 + 58 * row
    occluded, original = (
      figure[top : top + 56, 2:58],
      figure[top : top + 56, 3 * 58 + 2 : 3 * 58 + 58],
    )
    np.testing.assert_array_equal(original[::2, ::2], validation[index, :, :, 0] * 255)
    np.testing.assert_array_equal(occluded[:20], original[:20])  # 10 rows, upscaled 2x.
    assert (occluded[20:] == 128).all()


def test_sampling_without_a_checkpoint_fails_clearly(tmp_path):
  result = launch("--config=configs/quickstart.py", f"--workdir={tmp_path}", "--mode=sample")
  assert result.returncode != 0
  assert "No checkpoints in workdir" in result.stderr


def test_launch_rejects_a_config_file_with_a_misspelt_key(tmp_path):
  bad = tmp_path / "typo.py"
  bad.write_text(
    "from pixelrnn import defaults\n\ndef get_config():\n  c = defaults.base_config()\n"
    "  c.training.batchsize = 8\n  return c\n"
  )
  result = launch(f"--config={bad}", f"--workdir={tmp_path / 'w'}")
  assert result.returncode == 2
  assert result.stderr.startswith(
    "Error: Unknown config key 'training.batchsize'; did you mean "
    "'training.batch_size'? valid keys here:"
  )


def test_sampling_and_inpainting_work_for_a_recurrent_model(tmp_path):
  workdir = str(tmp_path / "diag")
  model = ["--config.model.name=diagonal_bilstm", "--config.model.hidden_dim=4"]
  trained = launch("--config=configs/quickstart.py", f"--workdir={workdir}", *FEW_STEPS, *model)
  assert trained.returncode == 0, trained.stderr[-3000:]
  sampled = launch(
    "--config=configs/quickstart.py",
    f"--workdir={workdir}",
    "--mode=sample",
    "--num_samples=2",
    *FEW_STEPS,
    *model,
  )
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  assert last_json(sampled.stdout)["cached_sampler"] is True
  assert np.asarray(Image.open(last_json(sampled.stdout)["png"])).shape == (60, 2 * 58 + 2)
  mismatched = launch(
    "--config=configs/quickstart.py", f"--workdir={workdir}", "--mode=inpaint", *FEW_STEPS
  )
  assert mismatched.returncode != 0
  assert "were written for a different model or dataset" in mismatched.stderr
  assert "'model.name': ('diagonal_bilstm', 'pixelcnn')" in mismatched.stderr


def test_a_class_conditional_config_trains_evaluates_each_class_and_samples_rows_of_classes(
  tmp_path, shared_data, mnist_tfds_dir
):
  workdir = str(tmp_path / "conditional")
  args = [
    "--config=configs/quickstart_gated_pixelcnn.py",
    f"--workdir={workdir}",
    f"--config.data.manual_dir={shared_data / 'mnist'}",
    f"--config.data.data_dir={mnist_tfds_dir}",
    "--config.model.hidden_dim=4",
    "--config.model.num_layers=2",
    "--config.training.steps_per_dispatch=1",
    *FEW_STEPS,
  ]
  args[args.index("--config.data.eval_split=validation")] = "--config.data.eval_split=test"
  trained = launch(*args)
  assert trained.returncode == 0, trained.stderr[-3000:]
  result = last_json(trained.stdout)
  per_class = [result[f"class_{k}_nll_nats"] for k in range(10)]
  counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # MNIST's test split.
  assert np.dot(per_class, counts) / 10_000 == pytest.approx(result["nll_nats"], rel=1e-5)
  rows = launch(*args, "--mode=sample", "--num_samples=2")
  assert rows.returncode == 0, rows.stderr[-3000:]
  assert last_json(rows.stdout)["rows"] == "one per class"
  assert np.asarray(Image.open(last_json(rows.stdout)["png"])).shape == (10 * 58 + 2, 2 * 58 + 2)
  one_class = launch(*args, "--mode=sample", "--num_samples=3", "--label=7")
  assert one_class.returncode == 0, one_class.stderr[-3000:]
  assert last_json(one_class.stdout)["rows"] == "class 7"
  assert np.asarray(Image.open(last_json(one_class.stdout)["png"])).shape == (60, 3 * 58 + 2)
  wrong = launch(*args, "--mode=sample", "--label=10")
  assert (
    wrong.returncode == 2
    and wrong.stderr.strip() == "Error: label=10: expected a class in [0, 10)."
  )
  inpainted = launch(*args, "--mode=inpaint", "--num_samples=2", "--num_completions=2")
  assert inpainted.returncode == 0, inpainted.stderr[-3000:]


def test_a_multiscale_config_trains_samples_and_inpaints(tmp_path):
  workdir = str(tmp_path / "ms")
  config = "--config=configs/binarized_mnist_multiscale_row_lstm.py"
  small = [
    "--config.model.hidden_dim=4",
    "--config.model.multiscale.small.hidden_dim=4",
    "--config.model.multiscale.small.num_layers=1",
    "--config.model.multiscale.conditioning_dim=4",
  ]
  trained = launch(config, f"--workdir={workdir}", *FEW_STEPS, *small)
  assert trained.returncode == 0, trained.stderr[-3000:]
  result = last_json(trained.stdout)
  assert result["nll_nats"] == pytest.approx(result["small_nll_nats"] + result["large_nll_nats"])
  sampled = launch(
    config, f"--workdir={workdir}", "--mode=sample", "--num_samples=3", *FEW_STEPS, *small
  )
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  result = last_json(sampled.stdout)
  assert result["cached_sampler"] is True
  large = np.asarray(Image.open(result["png"]))
  small_grid = np.asarray(Image.open(result["small_png"]))
  assert large.shape == (60, 3 * 58 + 2)  # 28x28 samples upscaled 2x.
  assert small_grid.shape == (32, 3 * 30 + 2)  # 14x14 samples upscaled 2x.
  # The subsampled positions of each large sample are its small sample.
  for k in range(3):
    big = large[2:58, 2 + 58 * k : 58 + 58 * k][::2, ::2]  # Undo the 2x upscaling.
    tiny = small_grid[2:30, 2 + 30 * k : 30 + 30 * k][::2, ::2]
    np.testing.assert_array_equal(big[::2, ::2], tiny)
  inpainted = launch(
    config,
    f"--workdir={workdir}",
    "--mode=inpaint",
    "--num_samples=2",
    "--num_completions=2",
    *FEW_STEPS,
    *small,
  )
  assert inpainted.returncode == 0, inpainted.stderr[-3000:]
  assert np.asarray(Image.open(last_json(inpainted.stdout)["png"])).shape == (
    2 * 58 + 2,
    4 * 58 + 2,
  )


def signal_after_logged_rows(signum, rows: int, *args) -> tuple[int, str, str]:
  """Starts launch.py with `args`, sends `signum` once its metrics.jsonl has `rows` rows,
  and returns its (exit status, stdout, stderr)."""
  workdir = pathlib.Path(next(a for a in args if a.startswith("--workdir=")).split("=", 1)[1])
  # A shell's background jobs inherit SIGINT ignored, while a terminal's Ctrl-C reaches a
  # foreground process with the default action: restore it, then exec launch.py.
  start = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, 'launch.py', *sys.argv[1:]])"
  )
  process = subprocess.Popen(
    [sys.executable, "-c", start, *args],
    cwd=REPO_ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= rows):
      assert process.poll() is None and time.monotonic() < deadline, "training did not start"
      time.sleep(0.2)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
  finally:
    process.kill()
  return process.returncode, stdout, stderr


def test_sigterm_saves_a_checkpoint_exits_143_and_the_rerun_continues_exactly(tmp_path):
  # A constant learning rate, so a run's first s steps do not depend on num_steps.
  settings = [
    "--config=configs/quickstart.py",
    "--config.model.num_layers=1",
    "--config.optimizer.schedule=constant",
    "--config.training.log_every_steps=1",
    "--config.training.checkpoint_every_steps=100000",
    "--config.training.eval_every_steps=100000",
    "--config.data.eval_split=validation",
    "--samples_after_training=0",
  ]
  workdir = tmp_path / "preempted"
  returncode, _, stderr = signal_after_logged_rows(
    signal.SIGTERM, 5, *settings, f"--workdir={workdir}", "--config.training.num_steps=100000"
  )
  assert returncode == 143, stderr[-3000:]
  assert "Traceback" not in stderr
  config = cli.load_config(str(REPO_ROOT / "configs" / "quickstart.py"))
  step = checkpoints.manager(str(workdir), config).latest_step()
  assert step is not None and step >= 5
  assert f"Stopped (SIGTERM): saved a checkpoint at step {step}; rerun to resume." in stderr

  final = f"--config.training.num_steps={step + 3}"
  resumed = launch(*settings, f"--workdir={workdir}", final)
  straight = launch(*settings, f"--workdir={tmp_path / 'straight'}", final)
  assert resumed.returncode == 0 and straight.returncode == 0, resumed.stderr[-3000:]
  assert last_json(resumed.stdout)["nll_nats"] == last_json(straight.stdout)["nll_nats"]
  config.model.num_layers, config.training.num_steps = 1, step + 3
  states = [restored_state(config, tmp_path / name) for name in ("preempted", "straight")]
  assert int(states[0].step) == step + 3
  jax.tree.map(np.testing.assert_array_equal, *states)


def restored_state(config, workdir):
  trainer = trainer_lib.Trainer(config, (28, 28, 1), 2, trainer_lib.make_mesh())
  return jax.device_get(
    checkpoints.restore(checkpoints.manager(str(workdir), config), trainer.abstract_state())
  )


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ["--config=configs/does_not_exist.py"],
      "Error: --config='configs/does_not_exist.py': no such file; expected a config file",
    ),
    (
      ["--config=configs/quickstart.py", "--config.training.batchsize=3"],
      "Error: --config.training.batchsize=3: Unknown config key 'training.batchsize'; did you "
      "mean 'training.batch_size'?",
    ),
    (
      ["--config=configs/quickstart.py", "--config.model.name=pixelcn"],
      "Error: Unknown model.name 'pixelcn'; valid choices: ['pixelcnn', 'row_lstm', 'diagonal_bilstm', 'gated_pixelcnn', 'pixelcnn_pp'].",
    ),
    (
      ["--config=configs/quickstart.py", "--config.data.name=imagenet"],
      "Error: Unknown data.name 'imagenet'; valid choices: ['binarized_mnist', 'mnist', "
      "'cifar10', 'mnist_thresholded', 'cifar10_first4000'].",
    ),
  ],
)
def test_bad_input_gets_one_line_naming_the_value(tmp_path, args, message):
  result = launch(*args, f"--workdir={tmp_path / 'w'}")
  assert result.returncode == 2
  assert result.stderr.strip() == message or result.stderr.strip().startswith(message), (
    result.stderr
  )
  assert len(result.stderr.strip().splitlines()) == 1


def test_a_config_file_that_fails_to_load_gets_one_line(tmp_path):
  broken = tmp_path / "broken.py"
  broken.write_text("def get_config():\n  return 1 / 0\n")
  result = launch(f"--config={broken}", f"--workdir={tmp_path / 'w'}")
  assert result.returncode == 2
  assert result.stderr.strip() == (
    f"Error: --config={str(broken)!r} could not be loaded: ZeroDivisionError: division by zero"
  )


@pytest.mark.parametrize("mode", ["train", "eval"])  # sample and inpaint read as eval does.
def test_a_workdir_that_is_a_file_gets_one_line(tmp_path, mode):
  not_a_dir = tmp_path / "file"
  not_a_dir.write_text("")
  result = launch("--config=configs/quickstart.py", f"--workdir={not_a_dir}", f"--mode={mode}")
  assert result.returncode == 2
  assert result.stderr.strip() == (
    f"Error: --workdir {str(not_a_dir)!r} is a file, expected a "
    "directory (new or one written by an earlier run)."
  )


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ["--mode=inpaint", "--observed_rows=29"],
      "Error: observed_rows=29: expected 0 to 28, the binarized_mnist image height.",
    ),
    (["--mode=inpaint", "--num_completions=0"], "Error: num_completions=0: expected at least 1."),
    (["--mode=sample", "--num_samples=0"], "Error: num_samples=0: expected at least 1."),
    (
      ["--mode=sample", "--label=3"],
      "Error: label=3: this model is not class-conditional (model.num_classes=0).",
    ),
  ],
)
def test_a_figure_request_out_of_range_gets_one_line(tmp_path, args, message):
  # Checked before the workdir is read: this one has no checkpoint.
  result = launch("--config=configs/quickstart.py", f"--workdir={tmp_path}", *args)
  assert result.returncode == 2 and result.stderr.strip() == message, result.stderr


def test_help_exits_zero():
  result = launch("--help")
  assert result.returncode == 0 and "--workdir" in result.stdout + result.stderr


def test_a_failing_save_ends_the_run_with_its_cause_and_the_previous_checkpoint_restores(tmp_path):
  # A real process whose orbax save of step 6 fails as a full disk would.
  inject = tmp_path / "inject.py"
  inject.write_text(
    "import errno, runpy, sys\n"
    "sys.path.insert(0, '.')\n"  # The checkout's pixelrnn, as for launch.py itself.
    "import orbax.checkpoint as ocp\n"
    "real_save = ocp.CheckpointManager.save\n"
    "def save(self, step, *args, **kwargs):\n"
    "  if step == 6:\n"
    "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
    "  return real_save(self, step, *args, **kwargs)\n"
    "ocp.CheckpointManager.save = save\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path('launch.py', run_name='__main__')\n"
  )
  workdir = tmp_path / "full"
  start = time.monotonic()
  result = subprocess.run(
    [
      sys.executable,
      str(inject),
      "launch.py",
      "--config=configs/quickstart.py",
      f"--workdir={workdir}",
      "--config.training.num_steps=20",
      "--config.training.checkpoint_every_steps=3",
      *FEW_STEPS[2:],
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert time.monotonic() - start < 300
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert (
    f"Error: Saving the checkpoint of step 6 in {workdir / 'checkpoints'} failed (OSError: "
    "[Errno 28] No space left on device); the last complete checkpoint, step 3, is intact."
    in result.stderr
  )
  config = cli.load_config(str(REPO_ROOT / "configs" / "quickstart.py"))
  config.model.num_layers = 1
  assert restored_state(config, workdir).step == 3
  assert not (workdir / "lock").exists()


def test_ctrl_c_exits_130_with_its_message_and_no_traceback(tmp_path):
  returncode, stdout, stderr = signal_after_logged_rows(
    signal.SIGINT,
    2,
    "--config=configs/quickstart.py",
    f"--workdir={tmp_path / 'interrupted'}",
    "--config.training.num_steps=100000",
    *FEW_STEPS[1:],
  )
  assert returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
  assert stopping.CTRL_C_NOTICE in stderr
  saved = re.search(
    r"Interrupted \(Ctrl-C\): saved a checkpoint at step (\d+); rerun to resume.", stderr
  )
  config = cli.load_config(str(REPO_ROOT / "configs" / "quickstart.py"))
  config.model.num_layers = 1
  assert saved and int(restored_state(config, tmp_path / "interrupted").step) == int(saved[1])


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ["--pretrained=bmnist_nope", "--mode=sample"],
      "Error: Unknown pretrained model 'bmnist_nope'; installed: ",
    ),
    (
      ["--pretrained=bmnist_nope"],
      "Error: --pretrained=bmnist_nope with --mode=train: a pretrained model is evaluated or "
      "sampled; expected --mode=eval, sample or inpaint.",
    ),
    (
      ["--config=configs/quickstart.py"],
      "Error: --workdir not given: expected --config=<file> and --workdir=<dir>, or "
      "--pretrained=<row> with --mode=eval, sample or inpaint.",
    ),
  ],
)
def test_pretrained_and_missing_sources_get_one_error_line(args, message):
  result = launch(*args)
  assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
