"""The fault table: one row per way an entry point can break, one fixture file per row.

To add a case: write tests/fixtures/faults/NAME.py that breaks exactly one thing, then add a row.  Both
the headless suite (test_reliability.py) and the app suite run every row.

Not every fault is fatal: OOM_ABOVE runs out of memory only above its default batch size, which the
profiler must recover from (no error; the OOM recorded and bounding max_batch_size).  Both suites run it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from .conftest import FIXTURES

FAULTS = FIXTURES / "faults"


@dataclass(frozen=True)
class Fault:
    name: str
    entry: str  # a file in tests/fixtures/faults, or a path relative to it that need not exist
    kind: str  # expected ErrorInfo.kind
    message: str  # words the message must contain
    file: Optional[str] = None  # expected ErrorInfo.file (relative to the project root)
    line_text: Optional[str] = None  # the expected line's source contains this text
    function: Optional[str] = None  # expected ErrorInfo.function
    flags: tuple[str, ...] = field(default=())

    @property
    def path(self) -> str:
        return str(FAULTS / self.entry)

    def expected_line(self) -> Optional[int]:
        if self.line_text is None:
            return None
        lines = (FAULTS / (self.file or self.entry)).read_text(encoding="utf-8", errors="replace").splitlines()
        return next(i for i, text in enumerate(lines, 1) if self.line_text in text)


FAULT_TABLE = [
    Fault("syntax error", "syntax_error.py", "syntax", "syntax_error.py, line", file="syntax_error.py",
          line_text="return tiny_model("),
    Fault("missing provider", "missing_provider.py", "entry_point", "has no skyline_iteration_provider()",
          file="missing_provider.py", function="skyline_iteration_provider"),
    Fault("wrong signature", "wrong_signature.py", "entry_point", "exactly one parameter named batch_size",
          file="wrong_signature.py", line_text="def skyline_input_provider(size=4)",
          function="skyline_input_provider"),
    Fault("bare tensor input", "bare_tensor.py", "entry_point", "not torch.Tensor", file="bare_tensor.py",
          line_text="def skyline_input_provider", function="skyline_input_provider"),
    Fault("wrong input type", "wrong_type.py", "entry_point", "not builtins.int", file="wrong_type.py",
          line_text="def skyline_input_provider", function="skyline_input_provider"),
    Fault("exception in forward", "forward_raises.py", "user_code", "shapes cannot be multiplied",
          file="forward_raises.py", line_text="return x @ self.fc.weight.t()", function="forward"),
    Fault("infinite loop", "infinite_loop.py", "timeout", "longer than 3 s", file="infinite_loop.py",
          line_text="while True: pass", function="iteration", flags=("--timeout", "3")),
    Fault("segfault", "segfault.py", "crash", "SIGSEGV", file="segfault.py", line_text="ctypes.string_at(0)",
          function="<lambda>"),
    Fault("killed by a signal", "killed.py", "crash", "SIGKILL"),
    Fault("profiler process killed", "kills_worker.py", "crash", "profiler worker died unexpectedly (SIGKILL)"),
    Fault("sys.exit", "sys_exit.py", "exit", "sys.exit(4)", file="sys_exit.py", line_text="sys.exit(4)"),
    Fault("os._exit", "os_exit.py", "exit", "os._exit(0)", file="os_exit.py", line_text="os._exit(0)",
          function="<lambda>"),
    Fault("not UTF-8", "not_utf8.py", "file", "not UTF-8", file="not_utf8.py", line_text="caf"),
    Fault("path does not exist", "no_such_entry.py", "file", "entry point not found"),
    Fault("path is a directory", ".", "file", "is a directory"),
    Fault("out of memory", "oom.py", "oom", "can't allocate memory", file="oom.py",
          line_text="waste = torch.empty"),
]

# Recovered, not fatal: fits at its default batch size (4), out of memory above OOM_ABOVE_LARGEST_THAT_FITS.
OOM_ABOVE = FAULTS / "oom_above.py"
OOM_ABOVE_LARGEST_THAT_FITS = int(re.search(r"^LARGEST_THAT_FITS = (\d+)", OOM_ABOVE.read_text(), re.M)[1])
