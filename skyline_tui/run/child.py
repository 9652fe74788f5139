"""The script's process: ``python -m skyline_tui.run.child SCRIPT ARGS...`` (or ``-m MODULE ARGS...``).

It becomes the script as ``python SCRIPT ARGS`` would run it (its own ``__main__`` with an absolute
``__file__``, ``sys.argv``, ``sys.path[0]`` the script's folder; cwd, environment and stdin are the
launcher's, which are the user's), after putting in place what watches it:

- the launcher's settings come in ``$SKYLINE_TUI_RUN`` (removed at once, so the script's own subprocesses
  run plain), the event pipe is an inherited descriptor (made close-on-exec here, for the same reason);
- the hooks go in the moment the script imports torch (an import hook): importing torch ourselves first
  would run it before the script's own ``os.environ`` settings (``OMP_NUM_THREADS``) are made;
- the launcher blocks SIGINT and friends while it forks us (it forwards them itself): unblocked here, so
  Ctrl-C reaches the script as ``KeyboardInterrupt`` and its own handler runs.

How it ends is the script's: its exit status, its traceback (our frames taken off, so it starts at the
script and ends at the user's line, through ``sys.excepthook``), and an uncaught ``KeyboardInterrupt``
ends the process by SIGINT after the atexit handlers, as Python does.  The last event (``ChildFinished``)
goes out from an atexit handler registered before the script's, so it runs after theirs.
"""

from __future__ import annotations

import atexit
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import os
import runpy
import signal
import sys
import time
import traceback
import types
from typing import Any, Optional

from skyline_tui.report import ErrorInfo
from skyline_tui.run import events as ev
from skyline_tui.run.channel import CONFIG_ENV, FORWARDED_SIGNALS, Sender, current_pid

DATALOADER_WORKER = "torch.utils.data._utils.worker"  # the module of a DataLoader worker process's target


class ChildState:
    def __init__(self, sender: Sender, config: dict[str, Any]):
        self.sender = sender
        self.config = config
        self.started = time.perf_counter()
        self.hooks: Any = None  # RunHooks, once torch is imported
        self.exit_code = 0
        self.error: Optional[ErrorInfo] = None
        self.interrupted = False
        self.torch_imported = False
        self.processes_started = 0  # through multiprocessing, by the script itself (not its DataLoader workers)


class TorchImportWatcher(importlib.abc.MetaPathFinder):
    """Runs ``on_import`` right after ``import torch`` completes, whoever imports it first."""

    def __init__(self, on_import: Any):
        self._on_import = on_import

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module, on_import = loader.exec_module, self._on_import

        def exec_then_hook(module: types.ModuleType) -> None:
            exec_module(module)
            on_import()

        loader.exec_module = exec_then_hook  # type: ignore[method-assign]
        return spec


def _count_processes(state: ChildState) -> None:
    """Count the processes the script starts through multiprocessing (hogwild training, a pool): a run without
    a step in the script's own process then says where its training may have gone.  Not DataLoader workers."""
    import multiprocessing.process as mp_process

    original = mp_process.BaseProcess.start

    @functools.wraps(original)
    def start(process: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(process, "_target", None)
        if current_pid() == state.sender.pid and getattr(target, "__module__", None) != DATALOADER_WORKER:
            state.processes_started += 1
        return original(process, *args, **kwargs)

    mp_process.BaseProcess.start = start  # type: ignore[method-assign,assignment]


def _torch_imported(state: ChildState) -> None:
    state.torch_imported = True
    try:
        import torch

        from skyline_tui.profiler.module_hooks import quiet_compile_warning
        from skyline_tui.run.hooks import RunHooks

        hooks = RunHooks(state.sender.send, state.started, samples_per_step=state.config.get("samples_per_step"),
                         health_every=state.config.get("health_every"), root=state.config.get("root"),
                         send_step=state.sender.send_step, health_budget=state.config.get("health_budget"))
        hooks.install()
        quiet_compile_warning()
        state.hooks = hooks
        state.sender.send(ev.TorchSeen(torch_version=torch.__version__.split("+")[0], cuda=torch.cuda.is_available()))
    except Exception as exc:  # noqa: BLE001 - our failure must never become the script's
        print(f"skyline-tui: warning: cannot watch this run's steps ({type(exc).__name__}: {exc}); "
              "the script runs on unwatched", file=sys.stderr)


def _finish(state: ChildState) -> None:
    """Last at exit: the steps still open or waiting for their loss, then the child's last word."""
    if os.getpid() != state.sender.pid:
        return
    hooks = state.hooks
    rss = allocated = reserved = None
    try:
        if hooks is not None:
            hooks.finish()
            rss, allocated, reserved = hooks.memory.peak_memory()
        state.sender.send(ev.ChildFinished(
            exit_code=state.exit_code, error=state.error, interrupted=state.interrupted,
            why_no_steps=why_no_steps(state), evaluation_passes=hooks.engine.evaluation_passes if hooks else 0,
            evaluation_ms=_evaluation_ms(hooks), backward_passes=hooks.engine.backward_passes if hooks else 0,
            optimizer_steps=hooks.engine.optimizer_steps if hooks else 0, peak_rss_bytes=rss,
            peak_allocated_bytes=allocated, peak_reserved_bytes=reserved))
    except Exception as exc:  # noqa: BLE001
        print(f"skyline-tui: warning: the run's last steps were not sent ({type(exc).__name__}: {exc})",
              file=sys.stderr)
    state.sender.close()
    if state.interrupted:
        # As Python ends on an uncaught KeyboardInterrupt: killed by SIGINT, so the shell sees 130.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def _evaluation_ms(hooks: Any) -> float:
    if hooks is None:
        return 0.0
    return float(hooks.engine.evaluation_seconds) * 1e3


def why_no_steps(state: ChildState) -> Optional[str]:
    hooks = state.hooks
    if hooks is not None and hooks.emitted:
        return None
    started = state.processes_started
    if not started:
        return _why_none_here(state, ": nothing was trained")
    return (_why_none_here(state, " in the script's own process") + f"; it started {started} "
            f"process{'es' if started > 1 else ''} (multiprocessing), which skyline-tui does not watch: training in "
            "several processes is not supported")


def _why_none_here(state: ChildState, untrained: str) -> str:
    hooks = state.hooks
    if not state.torch_imported:
        return "the script never imported torch"
    if hooks is None:
        return "the step hooks could not be installed"
    engine = hooks.engine
    if engine.backward_passes == 0:
        if engine.training_forwards:
            return f"{engine.training_forwards} forward passes ran with gradients, but no backward pass"
        if engine.evaluation_passes:
            return (f"{engine.evaluation_passes} forward passes ran without gradient (evaluation) and no backward "
                    f"pass{untrained}")
        return f"no module forward pass and no backward pass ran{untrained}"
    if engine.alive and engine.optimizer_steps == 0:
        return f"an optimizer was built but never stepped ({engine.backward_passes} backward passes ran)"
    return (f"the script ended before its first step completed ({engine.backward_passes} backward passes, "
            f"{engine.optimizer_steps} optimizer steps)")


def _user_traceback(exc: BaseException) -> Any:
    """The traceback from the script's first frame on: ours and runpy's are taken off the top."""
    tb = exc.__traceback__
    own = {os.path.abspath(__file__), runpy.__file__}
    while tb is not None and (tb.tb_frame.f_code.co_filename in own
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen runpy")):
        tb = tb.tb_next
    return tb


def error_info(exc: BaseException, tb: Any, root: str) -> ErrorInfo:
    from skyline_tui.profiler.frames import ProjectFiles  # torch-free

    files = ProjectFiles(root)
    where: Optional[tuple[str, int]] = None
    innermost: Optional[tuple[str, int]] = None
    for frame, line in traceback.walk_tb(tb):
        innermost = (frame.f_code.co_filename, line)
        rel = files.relpath(frame.f_code.co_filename)
        if rel is not None:
            where = (rel, line)
    if where is None and innermost is not None:
        where = innermost
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ErrorInfo(kind="user_code", message=message.splitlines()[0] if message else "",
                     file=where[0] if where else None, line=where[1] if where else None, traceback=text)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _run_file(path: str) -> None:
    if os.path.isdir(path) or not path.endswith(".py") and _is_zip(path):
        sys.path[0] = path
        runpy.run_path(path, run_name="__main__")
        return
    absolute = os.path.abspath(path)
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    with open(absolute, "rb") as fh:
        source = fh.read()
    main = types.ModuleType("__main__")
    main.__file__ = absolute
    main.__cached__ = None  # type: ignore[attr-defined]
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", absolute)
    main.__spec__ = None
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    code = compile(source, absolute, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def _is_zip(path: str) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def main(argv: list[str]) -> int:
    config = json.loads(os.environ.pop(CONFIG_ENV, "{}") or "{}")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    sender = Sender(config.get("fd"))
    state = ChildState(sender, config)
    if argv[:1] == ["-m"]:
        module, script_argv = argv[1], argv[1:]
        shown = f"-m {module}"
    else:
        module, script_argv = None, argv
        shown = argv[0]
    sys.argv = list(script_argv)
    if config.get("whole_lines"):
        # Unbuffered (PYTHONUNBUFFERED), print writes its text and its newline apart, and the lines of the processes
        # a script forks (hogwild trainers, DataLoader workers) came cut into one another: a line at a time, as
        # on a terminal.  (A text without a newline waits for one, or for a flush, as tqdm's do.)
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True, write_through=False)
    sender.send(ev.ScriptStarted(pid=os.getpid(), script=shown, argv=tuple(script_argv), cwd=os.getcwd()))
    atexit.register(_finish, state)
    _count_processes(state)
    # track.log in the script: over this pipe, with the run's own step count when it names no step.  Its batch
    # leaves at exit from an atexit handler registered later than _finish, so before the child's last word.
    from skyline_tui.track.run_sink import install as install_track

    install_track(lambda line: sender.send_line(line, time.perf_counter()),
                  lambda: state.hooks.engine.steps if state.hooks is not None else 0)
    if "torch" in sys.modules:
        _torch_imported(state)
    else:
        sys.meta_path.insert(0, TorchImportWatcher(lambda: _torch_imported(state)))
    root = config.get("root") or os.getcwd()
    try:
        if module is not None:
            sys.path[0] = os.getcwd()
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            _run_file(script_argv[0])
    except SystemExit as exc:
        state.exit_code = _exit_code(exc)
        if state.exit_code and not isinstance(exc.code, int) and exc.code is not None:
            state.error = ErrorInfo(kind="exit", message=str(exc.code))
        raise
    except BaseException as exc:  # noqa: BLE001 - shown as Python shows it, then recorded
        tb = _user_traceback(exc)
        state.error = error_info(exc, tb, root)
        state.exit_code = 1
        state.interrupted = isinstance(exc, KeyboardInterrupt)
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        return 1
    return 0


if __name__ == "__main__":
    from skyline_tui.run import child as _importable  # run under its own name: ``__main__`` becomes the script's

    sys.exit(_importable.main(sys.argv[1:]))
