"""The UI process never imports torch: start-up stays instant and user code cannot crash the UI."""

from __future__ import annotations

import subprocess
import sys

from app_support import REPO


def test_importing_the_app_imports_neither_torch_nor_the_profiler():
    code = (
        "import sys, skyline_tui.tui.app, skyline_tui.tui.views.source, skyline_tui.tui.gpu\n"
        "import skyline_tui.predictions.targets\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'skyline_tui.profiler')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
