#!/usr/bin/env bash
# Everything issue 11 could not check without a GPU, on a GPU box, in two calls of under 5 minutes each
# (a lent GPU's minutes are counted: a first call that fails leaves time for a second):
#   benchmarks/cuda_check.sh tests     the cuda-marked tests (tests/profiler/test_cuda.py, tests/profiler/test_memory.py)
#   benchmarks/cuda_check.sh figures   throughput vs a plain loop, breakdown overhead, predictions vs
#                                      measured at 2x/3x/4x/6x the batch, peak vs max_memory_allocated,
#                                      largest predicted batch vs the largest that runs
# Uses the python on PATH (on the lent H200s: PATH=/opt/torch/.venv/bin:$PATH); refuses (exit 3) when its
# torch sees no CUDA device, so a CPU-only torch cannot pass as a GPU run with every test skipped.
# Limits as seen on an H200 (2026-11-28): the tests took 86 s; the throughput step about 47 s for the four
# samples; the breakdown finished three samples in 50 s; predictions about 37 s a sample with one reference
# a factor (each a fresh process with its own CUDA context), so two samples; the memory search two samples
# in 70 s, so two.  Each step has its own time limit (seconds, overridable:
# e.g. TESTS_S=300) so one slow step cannot eat the others' time; a step that runs out says so and the
# script goes on.  Exit status: the tests' (tests), the last failing step's (figures).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PART=${1:-tests}
TESTS_S=${TESTS_S:-240}  # tests: 240 s
THROUGHPUT_S=${THROUGHPUT_S:-60} BREAKDOWN_S=${BREAKDOWN_S:-70} PREDICTIONS_S=${PREDICTIONS_S:-90}
MEMORY_S=${MEMORY_S:-75}  # figures: under 300 s in all

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo
    echo "==== $name (limit ${limit}s): $*"
    local started=$SECONDS
    timeout --signal=INT --kill-after=5 "$limit" "$@"
    local rc=$?
    [ "$rc" -eq 124 ] && echo "==== $name: stopped after ${limit}s (raise the limit to finish it)"
    echo "==== $name: exit $rc after $((SECONDS - started))s"
    return "$rc"
}

echo "==== machine"
nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv 2>&1 | head -9
python -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available',
torch.cuda.is_available(), 'devices', torch.cuda.device_count()); sys.exit(0 if torch.cuda.is_available() else 3)" \
    || { echo "==== no CUDA device visible to this torch: nothing here would run on a GPU"; exit 3; }

case "$PART" in
tests)
    step "cuda tests" "$TESTS_S" python -m pytest -m cuda tests/profiler/test_cuda.py tests/profiler/test_memory.py -q -rs \
        -p no:cacheprovider
    ;;
figures)
    rc=0
    step "throughput vs a plain loop" "$THROUGHPUT_S" python benchmarks/throughput_vs_plain.py --rounds 3 || rc=$?
    step "breakdown overhead" "$BREAKDOWN_S" python benchmarks/breakdown_overhead.py --rounds 3 --threads 0 || rc=$?
    step "predictions vs measured" "$PREDICTIONS_S" python benchmarks/predictions_accuracy.py \
        --samples convnet,lstm --pairs 1 --repeat 1 || rc=$?
    step "peak and largest batch" "$MEMORY_S" python benchmarks/cuda_memory_check.py --samples convnet,lstm \
        --steps 3 || rc=$?
    exit "$rc"
    ;;
*)
    echo "usage: benchmarks/cuda_check.sh [tests|figures]" >&2
    exit 2
    ;;
esac
