#!/usr/bin/env bash
# Everything issue 11 could not check without a GPU, in one call on a GPU box (under 9 minutes):
#   the cuda-marked tests, then the benchmarks' figures (throughput vs a plain loop, breakdown overhead,
#   predictions vs measured at 2x/3x/4x/6x the batch, peak vs max_memory_allocated, largest predicted
#   batch vs the largest that runs).
# Usage: benchmarks/cuda_check.sh            (from anywhere; uses the python on PATH)
# Each step has its own time limit (seconds, overridable: e.g. TESTS_S=300) so one slow step cannot eat
# the others' time; a step that runs out says so and the script goes on.  Exit status: the tests'.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
TESTS_S=${TESTS_S:-200} THROUGHPUT_S=${THROUGHPUT_S:-60} BREAKDOWN_S=${BREAKDOWN_S:-80}
PREDICTIONS_S=${PREDICTIONS_S:-110} MEMORY_S=${MEMORY_S:-80}  # 530 s in all: fits a 600 s device call

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo
    echo "==== $name (limit ${limit}s): $*"
    local started=$SECONDS
    timeout --signal=INT --kill-after=10 "$limit" "$@"
    local rc=$?
    [ "$rc" -eq 124 ] && echo "==== $name: stopped after ${limit}s (raise the limit to finish it)"
    echo "==== $name: exit $rc after $((SECONDS - started))s"
    return "$rc"
}

echo "==== machine"
nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv 2>&1 | head -9
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available',
torch.cuda.is_available(), 'devices', torch.cuda.device_count())"

step "cuda tests" "$TESTS_S" python -m pytest -m cuda -q -rs -p no:cacheprovider
tests_rc=$?
step "throughput vs a plain loop" "$THROUGHPUT_S" python benchmarks/throughput_vs_plain.py --rounds 3
step "breakdown overhead" "$BREAKDOWN_S" python benchmarks/breakdown_overhead.py --rounds 3 --threads 0
step "predictions vs measured" "$PREDICTIONS_S" python benchmarks/predictions_accuracy.py --repeat 3
step "peak and largest batch" "$MEMORY_S" python benchmarks/cuda_memory_check.py --steps 5
exit "$tests_rc"
