"""The CUDA fixes' logic that runs without a GPU: OOM recognition, the event pool under two threads, a
failing flush after a user error, capacity and the "fits" rule, peaks measured alike, NVML by UUID, the
"GPU readings unavailable" notice, and the worker's fork safety.  What needs a GPU is in test_cuda.py."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest
import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.attribution import EventPool, HostClock
from skyline_tui.profiler.predictions.scaling import measure_predictions
from skyline_tui.profiler.breakdown import InstrumentedIterations
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.errors import ProfileError, is_oom
from skyline_tui.profiler.memory import CPU_CAPACITY_SOURCE, memory_capacity, other_batch_input_bytes
from skyline_tui.profiler.run import load_workload, profile
from skyline_tui.profiler.predictions.capacity import fits_rule, max_batch_size, predicted_peak
from skyline_tui.report import BatchSample, LinearFit, Report
from skyline_tui.tui.gpu import NOT_AVAILABLE, GpuMonitor
from skyline_tui.predictions.targets import target_prediction
from skyline_tui.worker.fork_safety import cuda_fork_problem

from ..conftest import TINY_ENTRY, cli_env

# ---- 3. OOM recognition ---------------------------------------------------------------------------------

# The texts torch raises (c10 CUDA_CHECK / TORCH_CUDABLAS_CHECK / cuDNN) when a library's own allocation fails.
LIBRARY_OOMS = [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
]


@pytest.mark.parametrize("text", LIBRARY_OOMS)
def test_cublas_and_cudnn_allocation_failures_are_out_of_memory(text):
    assert is_oom(RuntimeError(text))
    assert is_oom(torch.AcceleratorError(text))


def test_other_library_failures_are_not_out_of_memory():
    assert not is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm`"))
    assert not is_oom(ValueError("CUDNN_STATUS_ALLOC_FAILED"))  # not an error torch raises for it


# ---- 1. the event pool shared by autograd's two threads ---------------------------------------------------


def test_the_event_pool_hands_each_item_to_one_holder_at_a_time_across_threads():
    created: list[object] = []
    pool = EventPool(lambda: created.append(object()) or created[-1])
    pool.give_back([pool.take()])  # one item to fight over: both threads see it, one gets it
    holders: set[int] = set()
    errors: list[BaseException] = []
    guard = threading.Lock()

    def churn() -> None:
        try:
            for _ in range(20000):
                item = pool.take()
                with guard:
                    assert id(item) not in holders, "an item handed out twice"
                    holders.add(id(item))
                with guard:
                    holders.discard(id(item))
                pool.give_back([item])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        threads = [threading.Thread(target=churn) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(pool) == len(created) <= 2  # everything came back; at most one per thread ever existed


# ---- 7. a failing flush after the user's error -------------------------------------------------------------


class StickyErrorClock(HostClock):
    """After a sticky CUDA error every CUDA call fails again: the flush's synchronise does."""

    def flush(self) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_a_failing_flush_does_not_hide_the_users_error(write_entry):
    source = TINY_ENTRY.replace("        loss.backward()\n",
                                "        loss.backward()\n        raise ValueError('user bug here')\n")
    ep = load_entry_point(write_entry(source))
    work = load_workload(ep, ep.default_batch_size)
    instruments = InstrumentedIterations(work, clock_factory=lambda device, ledger: StickyErrorClock(ledger))
    with pytest.raises(ProfileError) as info:
        work.run_user(lambda: instruments.run(1, 1), "iteration")
    error = info.value.info
    assert error.kind == "user_code" and "user bug here" in error.message
    assert error.file == "entry.py" and error.line == source.splitlines().index(
        "        raise ValueError('user bug here')") + 1


# ---- 2. capacity and the "fits" rule ---------------------------------------------------------------------


def test_cpu_capacity_is_system_ram_and_says_so():
    capacity, source = memory_capacity(torch.device("cpu"))
    # The kernel's own figure: MemTotal in /proc/meminfo (kB), where Linux has one.
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        (total_kb,) = [int(line.split()[1]) for line in meminfo.read_text().splitlines()
                       if line.startswith("MemTotal:")]
        assert capacity == total_kb * 1024
    assert capacity > 0 and source == CPU_CAPACITY_SOURCE


def test_predictions_state_their_capacity_and_rule(write_entry):
    report = profile(str(write_entry()), None, ProfileConfig.quick(breakdown=False, predictions_budget_s=0.5))
    assert report.error is None, report.error
    predictions, memory = report.predictions, report.memory
    assert predictions.memory_headroom == 0.0 and "system RAM" in predictions.fits_rule
    assert predictions.capacity_bytes == report.device.memory_capacity_bytes == memory.capacity_bytes
    assert memory.capacity_source == CPU_CAPACITY_SOURCE and memory.reserved_peak_bytes is None


OOM_ABOVE_20 = TINY_ENTRY.replace(
    "def skyline_input_provider(batch_size=4):\n",
    "def skyline_input_provider(batch_size=4):\n"
    "    if batch_size > 20:\n"
    "        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')\n")


def test_after_an_oom_the_largest_batch_is_one_that_ran(write_entry):
    """Memory fitted as if it were tiny (the fit says thousands fit): only what ran counts near an OOM."""
    ep = load_entry_point(write_entry(OOM_ABOVE_20))
    work = load_workload(ep, ep.default_batch_size)
    config = ProfileConfig.quick(predictions_budget_s=30.0)
    report = Report(entry_point="e", project_root="", batch_size=4, device=None)
    predictions = measure_predictions(work, config, report, measure_peak=lambda w, inputs: (inputs[0].shape[0], "n"))
    ran = {s.batch_size for s in predictions.samples}
    assert predictions.oom_batch_size is not None and predictions.oom_batch_size > 20
    assert predictions.max_batch_size in ran and predictions.max_batch_size <= 20


def test_the_ui_applies_the_reports_headroom(tmp_path):
    from app_support import load_report

    cuda = load_report("transformer_cuda")
    capacity = cuda.memory.capacity_bytes
    fit = dataclasses.replace(cuda.predictions.peak_memory_bytes, slope=capacity / 1000, bias=0.0)
    with_headroom = cuda.replace(predictions=dataclasses.replace(cuda.predictions, peak_memory_bytes=fit,
                                                                oom_batch_size=None, memory_headroom=0.1))
    assert target_prediction(with_headroom, 899).fits is True  # 89.9 % of the capacity
    assert target_prediction(with_headroom, 950).fits is False  # 95 %: inside the headroom
    without = with_headroom.replace(predictions=dataclasses.replace(with_headroom.predictions, memory_headroom=0.0))
    assert target_prediction(without, 950).fits is True


def test_the_ui_scales_the_peak_by_what_the_allocator_reserved_as_max_batch_size_does(tmp_path):
    from app_support import load_report

    cuda = load_report("transformer_cuda")
    capacity = cuda.memory.capacity_bytes
    fit = dataclasses.replace(cuda.predictions.peak_memory_bytes, slope=capacity / 1000, bias=0.0)
    # At the largest sampled batch 1.2 bytes reserved per allocated byte (batch 8's 3x is rounding).
    samples = (BatchSample(8, 1.0, peak_bytes=100, reserved_peak_bytes=300),
               BatchSample(64, 2.0, peak_bytes=1000, reserved_peak_bytes=1200))
    report = cuda.replace(predictions=dataclasses.replace(cuda.predictions, peak_memory_bytes=fit, samples=samples,
                                                          oom_batch_size=None, memory_headroom=0.1))
    # batch · capacity/1000 · 1.2 <= 0.9 · capacity: batch <= 750.
    assert target_prediction(report, 749).fits is True
    assert target_prediction(report, 751).fits is False
    unscaled = report.replace(predictions=dataclasses.replace(report.predictions, samples=()))
    assert target_prediction(unscaled, 751).fits is True  # 75.1 %: only the headroom applies
    assert max_batch_size([8, 64], None, capacity, 0.1, fit, 1.2) == 750  # the same rule


def test_the_largest_batch_that_fits_scales_the_allocated_line_by_what_the_allocator_reserved():
    # The allocated peak 30,000 bytes a sample over 10,000,000; 1,000,000,000 bytes of capacity, 10 % kept.
    fit = LinearFit(slope=30_000.0, bias=10_000_000.0, r2=1.0)
    capacity = 1_000_000_000
    # Allocated alone: (900,000,000 - 10,000,000) / 30,000 = 29,666.7.
    assert max_batch_size([32, 256], None, capacity, 0.10, fit) == 29_666
    # 1.1 reserved per allocated byte: (900,000,000 / 1.1 - 10,000,000) / 30,000 = 26,939.4.
    assert max_batch_size([32, 256], None, capacity, 0.10, fit, 1.1) == 26_939
    # Never below a batch that ran, and after an OOM only what ran counts, whatever the ratio.
    assert max_batch_size([32, 30_000], None, capacity, 0.10, fit, 1.1) == 30_000
    assert max_batch_size([32, 256], 512, capacity, 0.10, fit, 1.1) == 256
    # On CPU (ratio 1, no headroom) the rule is as it was: (1,000,000,000 - 10,000,000) / 30,000 = 33,000.
    assert max_batch_size([32, 256], None, capacity, 0.0, fit, 1.0) == 33_000


def test_the_attempt_rule_and_the_stated_rule_count_what_the_allocator_reserves():
    mb = 1_000_000
    samples = [BatchSample(8, 1.0, peak_bytes=18 * mb, reserved_peak_bytes=20 * mb),
               BatchSample(16, 2.0, peak_bytes=26 * mb, reserved_peak_bytes=39 * mb)]  # 1.5 at the largest
    # The line: 1 MB a sample over 10 MB; at 20, 30 MB allocated, times 1.5 = 45 MB reserved.
    assert predicted_peak(samples, 20) == pytest.approx(45 * mb)
    assert predicted_peak([BatchSample(8, 1.0, peak_bytes=18 * mb)], 16) == pytest.approx(36 * mb)  # in proportion
    rule = fits_rule(0.10, "free + reserved", 1.5)
    assert "times 1.500" in rule and "max_memory_reserved / max_memory_allocated" in rule and "90 %" in rule
    assert fits_rule(0.0, "system RAM", 1.0) == ("the largest batch whose fitted peak is at most the capacity: "
                                                 "system RAM; after an out-of-memory error, the largest batch that "
                                                 "ran below it")


# ---- 8. peaks at other batch sizes, measured alike ----------------------------------------------------------


def test_the_profiled_batchs_own_input_bytes_are_what_another_batch_leaves_out(write_entry):
    ep = load_entry_point(write_entry())
    work = load_workload(ep, 4)  # inputs: 4 x 8 floats (128 bytes) and 4 int64 labels (32 bytes)
    assert other_batch_input_bytes(work, work.inputs) == 0
    assert other_batch_input_bytes(work, work.make_inputs(16)) == 4 * 8 * 4 + 4 * 8
    sharing = (work.inputs[0], torch.zeros(16, dtype=torch.long))  # a provider that reuses a tensor
    assert other_batch_input_bytes(work, sharing) == 4 * 8


# ---- 5. NVML by UUID -------------------------------------------------------------------------------------------


def two_gpu_nvml(mig_of: str | None = None) -> types.SimpleNamespace:
    """NVML as a driver with two GPUs shows it (index order = PCI order, whatever CUDA_VISIBLE_DEVICES says)."""
    uuids = {"h0": "GPU-aaaa", "h1": "GPU-bbbb"}
    names = {"h0": "NVIDIA A100", "h1": "NVIDIA H100"}

    def by_uuid(uuid: str) -> str:
        if mig_of is not None and uuid == "MIG-cccc":
            return "mig"
        for handle, known in uuids.items():
            if known == uuid:
                return handle
        raise RuntimeError("Not Found")

    return types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2, nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetHandleByUUID=by_uuid,
        nvmlDeviceGetDeviceHandleFromMigDeviceHandle=lambda h: mig_of if h == "mig" else None,
        nvmlDeviceGetName=lambda h: names[h], nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=5),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=1, total=2),
        nvmlDeviceGetTemperature=lambda h, s: 40,
    )


def test_the_gpu_is_found_by_uuid_not_by_index_zero():
    monitor = GpuMonitor(nvml_loader=two_gpu_nvml)
    assert monitor.sample("bbbb").name == "NVIDIA H100"  # torch's bare UUID; NVML's "GPU-" spelling
    assert monitor.sample("GPU-aaaa").name == "NVIDIA A100"
    assert monitor.take_problem() is None


def test_a_mig_instance_reads_its_parent_gpu_and_says_so():
    sample = GpuMonitor(nvml_loader=lambda: two_gpu_nvml(mig_of="h1")).sample("cccc")
    assert sample.name == "NVIDIA H100 (whole GPU of this MIG instance)"


def test_an_unknown_or_unnamed_gpu_is_not_available_and_told_once():
    monitor = GpuMonitor(nvml_loader=two_gpu_nvml)
    assert monitor.sample("ffff") is NOT_AVAILABLE
    assert "ffff" in monitor.take_problem() and monitor.take_problem() is None
    assert GpuMonitor(nvml_loader=two_gpu_nvml).sample(None) is NOT_AVAILABLE  # two GPUs: which one?


# ---- 6. the notice once a CUDA report is on screen ----------------------------------------------------------


async def test_gpu_readings_unavailable_is_shown_once_a_cuda_report_is_on_screen():
    from app_support import FakeSourceFactory, TRANSFORMER_ENTRY, fixed_clock, load_report, wait_until

    from skyline_tui.tui.app import SkylineApp

    notices: list[str] = []

    class NoticeRecordingApp(SkylineApp):
        def notify(self, message: str, *, title: str = "", **kwargs) -> None:  # type: ignore[override]
            notices.append(title)
            super().notify(message, title=title, **kwargs)

    def missing():
        raise ImportError("No module named 'pynvml'")

    cuda = load_report("transformer_cuda")
    app = NoticeRecordingApp(str(TRANSFORMER_ENTRY), source=FakeSourceFactory([(cuda, True)]),
                             gpu=GpuMonitor(nvml_loader=missing), clock=fixed_clock, profile_on_start=False)
    async with app.run_test(size=(120, 30)) as pilot:
        app._poll_gpu()  # polls before any report: nothing to tell yet, and nothing is used up
        await pilot.pause(0.3)
        assert "GPU readings unavailable" not in notices
        await pilot.press("r")
        await wait_until(pilot, lambda: "GPU readings unavailable" in notices, timeout=10.0)
        app._poll_gpu()
        await pilot.pause(0.3)
    assert notices.count("GPU readings unavailable") == 1


# ---- 4. fork safety ---------------------------------------------------------------------------------------------


def test_the_worker_runs_with_the_nvml_based_cuda_check(tmp_path):
    from skyline_tui.worker.client import WorkerClient

    client = WorkerClient(lambda event: None)
    client.start()
    try:
        with open(f"/proc/{client.pid}/environ", "rb") as fh:
            environ = fh.read().split(b"\0")
    finally:
        client.close()
    assert b"PYTORCH_NVML_BASED_CUDA_CHECK=1" in environ


def test_the_fork_guard_allows_a_worker_without_cuda():
    # A fresh interpreter, as the worker is (on a GPU box this test process may have initialised CUDA).
    # The refusing side needs CUDA initialised: test_cuda.py checks it on a GPU.
    code = ("import torch\nfrom skyline_tui.worker.fork_safety import cuda_fork_problem\n"
            "print(torch.cuda.is_initialized(), cuda_fork_problem())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(),
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "None"]


def test_the_fork_guard_refuses_once_the_cuda_driver_maps_the_gpu(tmp_path):
    # Process maps as Linux writes them.  Every `import torch` of a CUDA build maps the runtime, and torch
    # 2.11+cu130 maps the driver library too (seen on an H200: a child forked then ran CUDA fine); only the
    # GPU's device files, which cuInit maps (a child forked after it failed its first CUDA call), mean that
    # CUDA was initialised.
    runtime = "7f1c2a000000-7f1c2a200000 r-xp 00000000 08:01 42 /usr/lib/python3/torch/lib/libcudart.so.13\n"
    driver = "7f1c3b000000-7f1c3b900000 r-xp 00000000 08:01 43 /usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04\n"
    anonymous = "7f1c4c000000-7f1c4c021000 rw-p 00000000 00:00 0 \n"
    device = ("7f1c5d000000-7f1c5d001000 rw-s 00000000 00:05 1035                       /dev/nvidiactl\n"
              "7f1c5e000000-7f1c5e200000 rw-s 00000000 00:05 1037                       /dev/nvidia0\n")
    imported, initialised = tmp_path / "maps_imported", tmp_path / "maps_initialised"
    imported.write_text(runtime + driver + anonymous)
    initialised.write_text(runtime + driver + anonymous + device)
    assert cuda_fork_problem(str(imported)) is None
    problem = cuda_fork_problem(str(initialised))
    assert problem is not None and "initialised CUDA" in problem
    assert cuda_fork_problem(str(tmp_path / "missing")) is None  # no process map (not Linux): no verdict
