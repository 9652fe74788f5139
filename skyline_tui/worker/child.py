"""The run child's side of the worker: what a forked child does before, during and after one profile run,
and what the worker imports once so that every child starts warm."""

from __future__ import annotations

import os
import resource
import signal
import sys

from skyline_tui.lifetime import die_with_parent
from skyline_tui.worker import protocol as p
from skyline_tui.worker import stacks

# What every run needs, imported once in the worker so each forked child starts warm.  torch._dynamo: every
# optimizer's add_param_group imports it (torch._compile's disable wrapper), which costs a second or two in
# each run child unless the zygote already has it.  Imports only: no CUDA.  A test imports each name, so a
# rename cannot silently turn an entry into a no-op.
PRELOAD_MODULES = ("torch.nn", "torch.nn.functional", "torch.optim", "torch.autograd", "torch.utils.data",
                   "torch._dynamo", "skyline_tui.profiler.run")


def preload() -> None:
    """Import what every run needs, once, so each forked child starts warm; measure what a page fault costs."""
    import gc
    import importlib

    for name in PRELOAD_MODULES:
        importlib.import_module(name)
    from skyline_tui.profiler.faults import fault_cost_us

    fault_cost_us()  # what a page fault costs here, measured once (about 20 ms) for every run child to inherit
    # What is imported now lives as long as the worker: out of the collector's sight, a child's full
    # collection (the health phase's release before its second model) walks only what the run made,
    # ~0.15 s less each on the mlp sample, and no collection writes to the shared pages (copy-on-write).
    gc.freeze()


def child_main(request: p.ProfileRequest, msg_fd: int, out_fd: int, err_fd: int, stack_fd: int,
                close: tuple[int, ...]) -> None:
    code = 0
    try:
        os.setpgid(0, 0)  # its own group: a cancel also kills whatever the user's code spawned
        die_with_parent()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not leave a core file in the project
        stacks.arm(stack_fd)
        for fd in close:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # user code must never read the terminal the UI is drawing on
        os.close(devnull)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - fd 0 lives as long as the process
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if request.root:
            os.chdir(request.root)
        elif os.path.isfile(request.entry):
            os.chdir(os.path.dirname(os.path.abspath(request.entry)))

        from skyline_tui.profiler.module_hooks import quiet_compile_warning
        from skyline_tui.profiler.run import profile

        quiet_compile_warning()

        def send(message: object) -> None:
            data = memoryview(p.encode(message))
            while data:
                data = data[os.write(msg_fd, data):]

        def emit(report: object, phase: str) -> None:
            send(p.RunReport(run_id=request.run_id, report=report, phase=phase, final=False))  # type: ignore[arg-type]

        report = profile(request.entry, request.root, request.config, emit,
                         on_phase=lambda phase: send(p.RunProgress(run_id=request.run_id, phase=phase)))
        send(p.RunReport(run_id=request.run_id, report=report, phase="error" if report.error else "done", final=True))
    except BaseException:  # noqa: BLE001 - the parent turns a silent death into an error report
        code = 70
        try:
            import traceback

            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        stacks.REAL_EXIT(code)
