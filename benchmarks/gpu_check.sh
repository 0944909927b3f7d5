#!/usr/bin/env bash
# On a machine with a GPU: the gpu-marked tests and the GPU benchmarks, figures printed, in
# about 5 minutes (an H200: 424 s when everything ran one after another; the memory benchmark
# now runs beside the tests). Run from anywhere: bash benchmarks/gpu_check.sh
# mltune's dependencies must be importable. On a machine that reaches no package registry,
# put their wheels in .whl/ (see the README's GPU notes): they are installed into /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import mlflow, hyperopt" 2>/dev/null; then
  [ -d .whl ] || { echo "mlflow/hyperopt missing and no .whl/ folder of wheels"; exit 1; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
LOG=${OUT:-/tmp}/gpu_check.log
: >"$LOG"
step() {
  echo "== $*" | tee -a "$LOG"
  local began=$SECONDS
  "$@" 2>&1 | grep -v -E "INFO mlflow|View run|View experiment|Successfully registered|Created version|already exists" | tee -a "$LOG"
  echo "-- ${PIPESTATUS[0]} (exit) in $((SECONDS - began)) s" | tee -a "$LOG"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
step python3 -c "import torch, mlflow; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'bf16', torch.cuda.is_bf16_supported(), 'mlflow', mlflow.__version__)"
# the 200-trial memory benchmark (about 3 minutes) runs beside the gpu tests, which measure
# nothing; the throughput benchmarks run alone afterwards
python3 benchmarks/memory_growth.py --trials 200 --device cuda >"${LOG}.memory" 2>&1 &
memory=$!
step python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
wait $memory
echo "== memory_growth.py --trials 200 --device cuda (exit $?)" | tee -a "$LOG"
grep -v -E "INFO mlflow|View run|View experiment|registered|Created version" "${LOG}.memory" \
  | tee -a "$LOG"
step python3 benchmarks/throughput.py --device cuda --epochs 3 --size 64 --channels 64 --batch-size 512 --compile
step python3 benchmarks/packing.py --device cuda --members 16
step python3 benchmarks/gpu_sharing.py --workers 4 --epochs 2
step python3 benchmarks/trials_per_hour.py --device cuda --trials 10 --epochs 5
step python3 benchmarks/devices.py --device cuda --task image --trials 64 --epochs 2
if [ -f benchmarks/ray_gpu_check.py ]; then step python3 benchmarks/ray_gpu_check.py; fi
step python3 benchmarks/ray_packs.py --device cuda --task image --trials 64 --epochs 2
echo "gpu_check done in ${SECONDS} s" | tee -a "$LOG"
