#!/usr/bin/env bash
# The one command a session lent a GPU runs there (the device tool's `run`, from the
# repository root, carrying .whl), within one call's 10 minutes:
#   1. experiments/benchmark.py on the GPU: the PixelCNN rows beside PyTorch, the
#      recurrent rows' Pallas LSTM kernel against the scan, 1 and 10 steps per dispatch;
#   2. then the longest unfinished row (ROW, default bmnist_gated_pixelcnn: 21 h on 2 CPU
#      cores) continues from its committed state for the time left, in $OUT/rows/<row>,
#      so that its workdir comes back with the results.
# Back here: copy $OUT/rows/<row> over experiments/rows/<row> (one checkpoint: the piece
# removes the older ones), commit it and $OUT/benchmark_gpu_*.jsonl (experiments/results/).
#
# The machine's image has jax, flax, optax, orbax and absl but not ml_collections: carry
# its wheel in .whl (the device README's Notes), e.g.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0
#
# On a CPU, SMOKE=1 checks the script end to end in a minute (tiny timings, 20 steps,
# PYTHON=.venv/bin/python).
set -uo pipefail
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_session_out}
ROW=${ROW:-bmnist_gated_pixelcnn}
BUDGET_S=${BUDGET_S:-560}  # The whole script, inside the call's 600 s.
start=$(date +%s)
mkdir -p "$OUT/rows" "$OUT/results"

if compgen -G ".whl/*.whl" > /dev/null; then
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
$PYTHON -c "import jax; print('devices:', jax.devices())" | tee "$OUT/devices.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

if [ "${SMOKE:-0}" = 1 ]; then
  timing=(--repeats=1 --warmup_steps=1 --timed_steps=2 --batch_size=4)
  pixelcnn=(--config=configs/quickstart.py)
  recurrent=(--config=configs/binarized_mnist_row_lstm.py)
  row_limit=(--max_steps=20)
  pallas=(--pallas_lstm=false)  # Off a GPU the kernel runs in Pallas interpret mode: slow.
else
  timing=(--repeats=3 --warmup_steps=5 --timed_steps=50)
  pixelcnn=(--config=configs/binarized_mnist_pixelcnn.py --config=configs/cifar10_pixelcnn.py)
  recurrent=(--config=configs/binarized_mnist_row_lstm.py
             --config=configs/binarized_mnist_diagonal_bilstm.py)
  row_limit=()
  pallas=(--pallas_lstm=false,true)
fi
date=$(date +%F)
timeout 180 $PYTHON experiments/benchmark.py "${pixelcnn[@]}" --torch --steps_per_dispatch=1,10 \
    "${timing[@]}" > "$OUT/benchmark_gpu_pixelcnn_$date.jsonl" 2> "$OUT/benchmark_pixelcnn.err"
echo "pixelcnn benchmark: exit $?"
timeout 150 $PYTHON experiments/benchmark.py "${recurrent[@]}" "${pallas[@]}" \
    --steps_per_dispatch=1,10 "${timing[@]}" > "$OUT/benchmark_gpu_recurrent_$date.jsonl" \
    2> "$OUT/benchmark_recurrent.err"
echo "recurrent benchmark: exit $?"

left=$(( BUDGET_S - ($(date +%s) - start) - 60 ))  # A minute for the final save and copy.
if [ "$left" -gt 60 ] && [ -d "experiments/rows/$ROW" ]; then
  cp -r "experiments/rows/$ROW" "$OUT/rows/"
  rm -f "$OUT/rows/$ROW/lock"
fi
if [ "$left" -gt 60 ]; then
  minutes=$(awk -v s="$left" 'BEGIN { printf "%.1f", s / 60 }')
  $PYTHON experiments/reproduce.py --rows="$ROW" --workroot="$OUT/rows" \
      --results_dir="$OUT/results" --pretrained_dir="$OUT/pretrained" \
      --time_budget_minutes="$minutes" "${row_limit[@]}" 2>&1 | tee "$OUT/row.log"
fi
echo "gpu_session: $(( $(date +%s) - start )) s"
