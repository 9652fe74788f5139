"""What only a real NVIDIA GPU can show (issue 11).  Every test here is marked ``cuda`` and skips cleanly
without one; ``benchmarks/cuda_check.sh`` runs them with the benchmarks on a GPU box.

Each figure is checked against something the profiler did not compute: a calibrated GPU sleep timed by
the host, a known matmul ratio, a known allocation, ``torch.cuda.mem_get_info``, NVML.
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.predictions.scaling import measure_predictions
from skyline_tui.profiler.breakdown import measure_breakdown
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.memory import CUDA_CAPACITY_SOURCE, measure_memory
from skyline_tui.profiler.run import load_workload, measure_throughput, profile
from skyline_tui.profiler.workload import Workload, device_info
from skyline_tui.report import Report
from skyline_tui.worker.protocol import WORKER_ENVIRONMENT

from ..conftest import QUICK_FLAGS, REPO, SAMPLES, cli_env, run_cli

CUDA = Path(__file__).parent.parent / "fixtures" / "cuda"

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]
two_gpus = pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                              reason="needs two NVIDIA GPUs")


def workload(entry: Path, batch_size: int | None = None) -> Workload:
    ep = load_entry_point(entry)
    return load_workload(ep, batch_size or ep.default_batch_size)


def line_of(path: Path, text: str) -> int:
    numbers = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(numbers) == 1, (text, numbers)
    return numbers[0]


# ---- timing --------------------------------------------------------------------------------------------------


def sleep_cycles_for(ms: float) -> int:
    """GPU clock cycles that ``torch.cuda._sleep`` spins for ``ms``, calibrated against the host clock
    around a synchronised sleep (long enough that launch and synchronisation costs are noise)."""
    cycles = 50_000_000
    torch.cuda._sleep(cycles // 10)  # wake the GPU up
    torch.cuda.synchronize()
    started = time.perf_counter()
    torch.cuda._sleep(cycles)
    torch.cuda.synchronize()
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return int(cycles * ms / elapsed_ms)


SLEEP_ENTRY = '''
import torch

CYCLES = {cycles}


def skyline_model_provider():
    return torch.nn.Linear(4, 4).cuda()


def skyline_input_provider(batch_size=4):
    return (torch.randn(batch_size, 4, device="cuda"),)


def skyline_iteration_provider(model):
    def iteration(x):
        torch.cuda._sleep(CYCLES)  # returns at once on the host; the GPU is busy for SLEEP_MS

    return iteration
'''


def test_throughput_of_a_gpu_sleep_is_at_least_the_sleep(write_entry):
    sleep_ms = 20.0
    entry = write_entry(SLEEP_ENTRY.format(cycles=sleep_cycles_for(sleep_ms)))
    work = workload(entry)
    throughput = measure_throughput(work, ProfileConfig.quick())
    # The reference: host clock around each synchronised iteration (the sleep's real length now, whatever
    # the GPU's clock did since the calibration).  Host timing without the synchronisation would read the
    # launch (microseconds).
    host_ms = []
    for _ in range(5):
        torch.cuda.synchronize()
        started = time.perf_counter()
        work.run()
        torch.cuda.synchronize()
        host_ms.append((time.perf_counter() - started) * 1000.0)
    assert statistics.median(host_ms) >= 0.5 * sleep_ms, host_ms  # the calibration held
    assert throughput.iteration_ms >= 0.8 * statistics.median(host_ms), (throughput, host_ms)
    # The host's page faults are not set against GPU time (profiler/run.py): none reported on CUDA.
    assert throughput.page_faults_per_iteration is None and throughput.page_fault_ms is None, throughput


# ---- breakdown -------------------------------------------------------------------------------------------------


def plain_matmul_ms(a: torch.Tensor, b: torch.Tensor, repeats: int = 10) -> float:
    """``a @ b`` in a plain loop, no instruments: the median of its CUDA-event times (GPU time, which the
    host's load does not stretch)."""
    times = []
    with torch.no_grad():
        for _ in range(3):
            a @ b  # warm-up: cuBLAS picks its kernel
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def test_the_breakdown_ranks_the_16x_matmul_line_first():
    entry = CUDA / "heavy_line.py"
    work = workload(entry)
    breakdown = measure_breakdown(work, ProfileConfig.quick(breakdown_iterations=3))
    top = breakdown.lines[0]
    assert (top.file, top.line) == ("heavy_line.py", line_of(entry, "heavy = x16 @ self.w2")), breakdown.lines
    assert top.backward_ms > 0
    light_lines = {line_of(entry, "light_a = x @ self.w1"), line_of(entry, "light_b = x @ self.w3")}
    light = [r for r in breakdown.lines if r.line in light_lines]
    assert len(light) == 2 and all(top.total_ms > 4 * r.total_ms for r in light), breakdown.lines
    attributed = sum(r.total_ms for r in breakdown.lines) + breakdown.optimizer_ms
    # The rows fit in the iteration ("other" was not clipped at 0 to make them add up).
    assert attributed <= breakdown.profiled_iteration_ms * 1.02, breakdown
    # The heavy line's forward is its one matmul, x16 @ w2: the same matmul in a plain loop, in GPU time.
    plain_ms = plain_matmul_ms(work.inputs[1], work.model.w2)
    assert 0.5 * plain_ms <= top.forward_ms <= 2 * plain_ms, (top, plain_ms)


@two_gpus
def test_a_model_on_a_gpu_that_is_not_current_is_broken_down_without_errors(monkeypatch):
    monkeypatch.setenv("SKYLINE_TEST_DEVICE", "cuda:1")
    torch.cuda.set_device(0)
    work = workload(CUDA / "heavy_line.py", batch_size=64)
    assert work.device == torch.device("cuda", 1)
    breakdown = measure_breakdown(work, ProfileConfig.quick(breakdown_iterations=2))
    # Timed on GPU 1's stream: the heavy line's kernels are there (on GPU 0's stream the events would
    # bracket nothing but launch gaps).
    entry = CUDA / "heavy_line.py"
    assert breakdown.lines[0].line == line_of(entry, "heavy = x16 @ self.w2"), breakdown.lines
    assert breakdown.lines[0].backward_ms > 0
    assert torch.cuda.current_device() == 0  # put back


def test_a_sticky_cuda_error_is_reported_at_the_users_line(tmp_path):
    entry = CUDA / "sticky_error.py"
    result = run_cli(str(entry), "--json", "-", "--no-memory", "--no-predictions", *QUICK_FLAGS, cwd=tmp_path)
    report = json.loads(result.stdout)
    error = report["error"]
    assert error is not None and error["kind"] == "user_code", error
    assert (error["file"], error["line"]) == ("sticky_error.py", line_of(entry, "print(out[torch.tensor(")), error


# ---- memory ----------------------------------------------------------------------------------------------------

TEMPORARY_ENTRY = '''
import torch

TEMPORARY_BYTES = 64 << 20


def skyline_model_provider():
    return torch.nn.Linear(1024, 1024).cuda()


def skyline_input_provider(batch_size=32):
    return (torch.randn(batch_size, 1024, device="cuda"),)


def skyline_iteration_provider(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def iteration(x):
        optimizer.zero_grad()
        temporary = torch.ones(TEMPORARY_BYTES // 4, device="cuda")  # alive with the weights and inputs
        model(x).sum().backward()
        del temporary
        optimizer.step()

    return iteration
'''


def test_peak_includes_a_known_temporary_and_capacity_is_what_the_process_can_get(write_entry):
    work = workload(write_entry(TEMPORARY_ENTRY))
    memory = measure_memory(work, ProfileConfig.quick())
    weights = (1024 * 1024 + 1024) * 4
    inputs = 32 * 1024 * 4
    resident = weights + weights + inputs  # weights, their gradients (plain SGD: no state), the inputs
    assert memory.peak_bytes >= resident + (64 << 20), memory
    assert memory.reserved_peak_bytes is not None and memory.reserved_peak_bytes >= memory.peak_bytes
    assert memory.capacity_source == CUDA_CAPACITY_SOURCE
    assert_the_process_can_get(memory.capacity_bytes)


def assert_the_process_can_get(capacity_bytes: int) -> None:
    """What a capacity promises, tried: what this process can still allocate of it (90 %: allocator rounding)
    is allocated in one block, and a block a GiB over all of it is refused; never more than the device holds."""
    assert capacity_bytes <= torch.cuda.mem_get_info()[1]
    torch.cuda.synchronize()
    spare = capacity_bytes - torch.cuda.memory_allocated()
    block = torch.empty(int(0.9 * spare), dtype=torch.uint8, device="cuda")
    del block
    with pytest.raises(torch.OutOfMemoryError):
        torch.empty(spare + (1 << 30), dtype=torch.uint8, device="cuda")
    torch.cuda.empty_cache()


def test_a_peak_at_another_batch_leaves_out_the_profiled_batchs_inputs():
    from skyline_tui.profiler.memory import measure_peak

    ep = load_entry_point(CUDA / "entry.py")
    work = load_workload(ep, 4096)  # profiled inputs: 4 MiB of floats + labels
    at_8_with_big_resident, _ = measure_peak(work, work.make_inputs(8))
    del work  # the allocator's peak counts everything alive on the device: only one workload at a time
    gc.collect()
    torch.cuda.empty_cache()
    alone = load_workload(ep, 8)
    at_8_alone, _ = measure_peak(alone, alone.inputs)
    assert at_8_with_big_resident == pytest.approx(at_8_alone, abs=64 << 10)


def test_out_of_memory_above_batch_n_is_found_and_the_largest_batch_runs():
    entry = CUDA / "oom_above.py"
    work = workload(entry)
    fixture = work.entry.module  # OOM_ABOVE
    report = Report(entry_point=str(entry), project_root=str(CUDA), batch_size=work.batch_size,
                    device=device_info(work.device))
    config = ProfileConfig.quick(predictions_budget_s=60.0)
    report = report.replace(throughput=measure_throughput(work, config))
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    predictions = measure_predictions(work, config, report)
    assert predictions.oom_batch_size is not None and predictions.oom_batch_size > fixture.OOM_ABOVE, predictions
    assert predictions.max_batch_size is not None and predictions.max_batch_size <= fixture.OOM_ABOVE, predictions
    assert predictions.memory_headroom == 0.10 and predictions.capacity_bytes  # README: "less a 10 % headroom"
    # As the throughput's: the host's page faults are not set against GPU time (profiler/predictions/timing.FaultTally).
    assert all(s.page_faults_per_iteration is None and s.page_fault_ms is None for s in predictions.samples)
    # The failed batch's blocks were freed (its per-sample block alone is 31 MiB or more).
    assert torch.cuda.memory_allocated() <= baseline + (1 << 20)
    largest = workload(entry, batch_size=predictions.max_batch_size)
    largest.run()  # raises if it does not fit
    torch.cuda.synchronize()


def test_every_sampled_batch_records_what_the_allocator_reserved_and_the_largest_batch_it_allows_runs():
    """Issue 29: the lstm's predicted maximum ran out of memory on an H200, its reserved peak ~10 % over the
    allocated one.  Each sample's reserved peak is torch's own max_memory_reserved (at least the allocated
    peak), the profiled batch's is the memory phase's, and the batch the scaled rule allows really runs."""
    entry = CUDA / "entry.py"
    work = workload(entry)
    config = ProfileConfig.quick(predictions_budget_s=10.0)
    report = Report(entry_point=str(entry), project_root=str(CUDA), batch_size=work.batch_size,
                    device=device_info(work.device))
    report = report.replace(throughput=measure_throughput(work, config), memory=measure_memory(work, config))
    predictions = measure_predictions(work, config, report)
    assert predictions.oom_batch_size is None and len(predictions.samples) >= 3, predictions
    for sample in predictions.samples:
        assert sample.reserved_peak_bytes is not None and sample.reserved_peak_bytes >= sample.peak_bytes, sample
    profiled = next(s for s in predictions.samples if s.batch_size == work.batch_size)
    assert profiled.reserved_peak_bytes == report.memory.reserved_peak_bytes
    largest = max(predictions.samples, key=lambda s: s.batch_size)
    ratio = largest.reserved_peak_bytes / largest.peak_bytes
    assert ratio == 1.0 or f"times {ratio:.3f}" in predictions.fits_rule, predictions.fits_rule
    del work, report  # the allocator decides alone: a fresh workload at the predicted maximum
    gc.collect()
    torch.cuda.empty_cache()
    at_max = workload(entry, batch_size=predictions.max_batch_size)
    at_max.run()  # raises if it does not fit
    at_max.run()  # the second one with Adam's state
    torch.cuda.synchronize()


# ---- the worker --------------------------------------------------------------------------------------------------


def test_two_cuda_runs_through_one_warm_worker_and_the_worker_never_initialises_cuda():
    import queue

    from skyline_tui.worker import protocol as p
    from skyline_tui.worker.client import WorkerClient

    finals: queue.Queue[p.RunReport] = queue.Queue()
    client = WorkerClient(lambda e: finals.put(e) if isinstance(e, p.RunReport) and e.final else None)
    client.start()
    try:
        config = ProfileConfig.quick(breakdown=False, predictions=False)
        for _ in range(2):
            client.submit(str(CUDA / "entry.py"), None, config)
            report = finals.get(timeout=300).report
            assert report.error is None, report.error
            assert report.device is not None and report.device.type == "cuda"
        maps = Path(f"/proc/{client.pid}/maps").read_text()
    finally:
        client.close()
    # cuInit maps the GPU's device files (/dev/nvidiactl, /dev/nvidia0); an `import torch` maps none of them
    # (torch 2.11+cu130 maps libcuda.so itself at import, so that library says nothing).
    devices = [line for line in maps.splitlines() if " /dev/nvidia" in line]
    assert devices == []  # the worker itself never initialised CUDA: its children could


@pytest.mark.parametrize("touch, refused", [
    ("torch.cuda.is_available()", False),  # the worker's NVML check: opens /dev/nvidia* but initialises nothing
    ("ctypes.CDLL('libcuda.so.1').cuInit(0)", True),  # the driver initialised behind torch's back
])
def test_the_fork_guard_sees_the_driver_initialised_and_only_then(touch, refused):
    # Whether a child forked afterwards can run CUDA, next to the guard's verdict in the same process.
    code = ("import ctypes, os, torch\n"
            "from skyline_tui.worker.fork_safety import cuda_fork_problem\n"
            f"{touch}\n"
            "print('refused' if cuda_fork_problem() else 'allowed', torch.cuda.is_initialized())\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    try:\n"
            "        torch.ones(1, device='cuda').item(); print('child-ok', flush=True)\n"
            "    except Exception:\n"
            "        print('child-failed', flush=True)\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    # The worker's environment: without its NVML switch, is_available() itself runs cuInit (seen on the H200).
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                            env={**cli_env(), **WORKER_ENVIRONMENT}, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    verdict, torch_flag, child = result.stdout.split()
    assert torch_flag == "False"  # torch's own flag says nothing in either case
    assert (verdict, child) == (("refused", "child-failed") if refused else ("allowed", "child-ok"))


def test_the_fork_guard_refuses_once_cuda_is_initialised():
    code = ("import torch; torch.cuda.init()\n"
            "from skyline_tui.worker.fork_safety import cuda_fork_problem\n"
            "print(cuda_fork_problem())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(),
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "initialised CUDA" in result.stdout


# ---- NVML ---------------------------------------------------------------------------------------------------------


def test_nvml_reads_the_profiled_gpu():
    pytest.importorskip("pynvml")
    from skyline_tui.tui.gpu import GpuMonitor

    info = device_info(torch.device("cuda", torch.cuda.current_device()))
    assert info.uuid
    monitor = GpuMonitor()
    try:
        sample = monitor.sample(info.uuid)
    finally:
        monitor.close()
    assert sample.available, monitor.take_problem()
    assert sample.name.startswith(info.name)
    # NVML and the CUDA runtime count total memory slightly differently (reserved regions).
    assert sample.memory_total_bytes == pytest.approx(info.memory_capacity_bytes, rel=0.05)


@two_gpus
def test_nvml_reads_the_profiled_gpu_with_cuda_visible_devices_1():
    pytest.importorskip("pynvml")
    import pynvml

    code = ("import torch\n"
            "from skyline_tui.profiler.workload import device_info\n"
            "from skyline_tui.tui.gpu import GpuMonitor\n"
            "info = device_info(torch.device('cuda', 0))\n"
            "sample = GpuMonitor().sample(info.uuid)\n"
            "print(info.uuid, sample.name, sep='\\n')\n")
    env = {**cli_env(), "CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    uuid, name = result.stdout.strip().splitlines()
    pynvml.nvmlInit()
    try:
        second = pynvml.nvmlDeviceGetHandleByIndex(1)  # PCI order, as CUDA_DEVICE_ORDER asked
        expected_uuid = pynvml.nvmlDeviceGetUUID(second)
        expected_name = pynvml.nvmlDeviceGetName(second)
    finally:
        pynvml.nvmlShutdown()
    expected_uuid = expected_uuid.decode() if isinstance(expected_uuid, bytes) else expected_uuid
    expected_name = expected_name.decode() if isinstance(expected_name, bytes) else expected_name
    assert expected_uuid.endswith(uuid.removeprefix("GPU-")) and name == expected_name


# ---- the samples ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.iterdir() if (p / "entry.py").exists()))
def test_every_bundled_sample_reports_cuda_through_the_cli(sample, tmp_path):
    result = run_cli(str(SAMPLES / sample / "entry.py"), "--json", "-", *QUICK_FLAGS, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["error"] is None, report["error"]
    assert report["device"]["type"] == "cuda" and report["device"]["uuid"]


def test_profile_reports_the_devices_uuid_and_cuda_fits_rule():
    report = profile(str(CUDA / "entry.py"), None, ProfileConfig.quick(breakdown=False, predictions_budget_s=2.0))
    assert report.error is None, report.error
    assert report.device.uuid == str(torch.cuda.get_device_properties(0).uuid).removeprefix("GPU-")
    assert report.predictions.memory_headroom == 0.10  # README: "less a 10 % headroom for the allocator"
    assert "torch.cuda.mem_get_info" in report.predictions.fits_rule
