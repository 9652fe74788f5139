"""The hooks a run puts on the script's model stay out of what the script saves, copies or compiles:
``torch.save(model)``, ``copy.deepcopy(model)``, ``torch.jit.script`` and ``torch.jit.trace`` work as they do
without skyline-tui, and neither the file nor the copy carries them."""

from __future__ import annotations

import subprocess
import sys

from tests.run_support import printed, run_script


def test_a_model_saved_whole_and_deep_copied_every_step_carries_none_of_the_runs_hooks(tmp_path):
    saved = tmp_path / "model.pt"
    # Health on every step: the per-layer hooks are on the model while it is saved, as well as the run's own.
    outcome = run_script(tmp_path, "saves_the_model.py", str(saved), options=("--health-every", "1"))
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == 5
    assert printed(outcome.stdout, "LOSS \\S+ COPY") == [0] * 5
    assert all(own > 0 for own in printed(outcome.stdout, "LOSS \\S+ COPY \\S+ OWN")[1:])  # ours were there
    # TorchScript compiled the run's hooks as the model's (and failed on their signature); a trace ran them.
    assert "SCRIPTED True TRACED True" in outcome.stdout, outcome.process.stderr[-2000:]
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, torch\nmodel = torch.load(sys.argv[1], weights_only=False)\n"
         "print(sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()))\n"
         "print('skyline_tui' in sys.modules)", str(saved)],
        capture_output=True, text=True, timeout=120)
    assert loaded.stdout.split() == ["0", "False"], loaded.stderr
