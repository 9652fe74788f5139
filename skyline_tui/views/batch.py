"""The batch-size control: the profiled batch, the target the keys move, and whether it fits."""

from __future__ import annotations

from typing import Optional

from textual.widgets import Static

from skyline_tui.targets import TargetPrediction


class BatchControl(Static):
    """One line; the arrows and 'write' are clickable as well as bound to keys."""

    def show(self, profiled: Optional[int], target: Optional[TargetPrediction]) -> None:
        if profiled is None or target is None:
            self.update("[b]batch[/] [dim]N/A until a profile runs[/]")
            self.set_class(False, "-does-not-fit")
            return
        less = "[@click=app.batch_down] − [/]"
        more = "[@click=app.batch_up] + [/]"
        value = f"[b reverse] {target.batch_size} [/]"
        origin = " [dim]profiled[/]" if target.measured else f" [dim]from {profiled}[/]"
        if target.fits is None:
            fits = "[dim]fit unknown[/]"
        elif target.fits:
            fits = "[$success]✓ fits[/]"
        else:
            fits = "[$error b]✗ does not fit[/]"
        limit = f" [dim]≤{target.max_batch_size:,}[/]" if target.max_batch_size is not None else ""
        write = "" if target.measured else "  [@click=app.write_batch_size][u]w[/u]rite[/]"
        self.update(f"[b]batch[/]{less}{value}{more}{origin} {fits}{limit}{write}")
        self.set_class(target.fits is False, "-does-not-fit")
