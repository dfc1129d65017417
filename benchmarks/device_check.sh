#!/usr/bin/env bash
# The speed comparison's GPU figures in one call on a lent GPU machine (issue 19; README "Speed
# against PyTorch"): `benchmarks/summary.py` with JAX on the GPU against PyTorch on CUDA (the
# DANN step of each fig. 5.3 architecture, the warp's forward + backward), JaxPaint at 64, 1,024
# and 8,192 canvases, and N4-Fields' committee of 3 at 3 scales on a 320 x 480 image against the
# 0.1 s goal (dense, and a code every 8 pixels), then that committee at strides 2 and 4.
#
# That machine's image has JAX with CUDA, PyTorch, flax, optax, chex and orbax, but neither
# ml-collections nor the network. Once, here (ignored by git, carried by the call):
#   make device-wheels
# then one call of the device tool, from the repository root:
#   run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=570)
# It writes (at most the 8 files that come back) $OUT/summary.txt (the GPU, the table, the tail
# of any failed benchmark's log), $OUT/summary.json and $OUT/reports.tar.gz (every benchmark's
# JSON report and log). Its own time limits end it within 8.5 minutes (not yet run on a GPU: the
# first run will say how long).
# Anywhere else it writes runs/device/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/device}
logs=$(mktemp -d)
mkdir -p "$out"
python=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$python" -c 'import jax; print("jax", jax.__version__, jax.devices())'
} | tee "$out/summary.txt"
quick=()  # QUICK=1: the benchmarks' tiny sizes, to try this script on any machine in a minute
n4=(--bench-images=0 --repeats=2)
if [ -n "${QUICK:-}" ]; then
  quick=(--quick)
  n4=(--bench-images=0 --repeats=1 --narrow --image-size=64x96 --dictionary-size=2000)
fi
timeout 360 "$python" benchmarks/summary.py "${quick[@]}" --torch-python="$python" \
  --reports="$logs" --json-out="$out/summary.json" 2>&1 | tee -a "$out/summary.txt"
status=${PIPESTATUS[0]}
tar -czf "$out/reports.tar.gz" -C "$logs" .
for log in "$logs"/*.log; do  # what a failed benchmark said, in the file that comes back
  name=$(basename "$log" .log)
  [ -e "$logs/$name.json" ] || { echo "--- $name"; tail -n 15 "$log"; } >> "$out/summary.txt"
done
for stride in 2 4; do  # the summary's rows are strides 1 (the thesis's dense map) and 8
  timeout 50 "$python" benchmarks/n4fields.py "${n4[@]}" --stride="$stride" 2>&1 \
    | grep -E 'nets, |Error' | sed "s/^/stride $stride: /" | tee -a "$out/summary.txt"
done
exit "$status"
