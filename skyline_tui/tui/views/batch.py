"""The batch-size control: the profiled batch, the target the keys move, and whether it fits."""

from __future__ import annotations

from typing import Optional

from textual.widgets import Static

from skyline_tui.predictions.targets import TargetPrediction


class BatchControl(Static):
    """One line; the arrows and 'write' are clickable as well as bound to keys."""

    def show(self, profiled: Optional[int], target: Optional[TargetPrediction], fit_is_old: bool = False) -> None:
        """``fit_is_old``: the fits behind the verdict and the limit come from a previous run.

        The line has no room for words at 80 columns, so here the verdict is only muted (as a stale
        pane's title is); the throughput pane's title just above says 'fit from previous run'.
        """
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
        elif fit_is_old:
            fits = "[dim i]✓ fits[/]" if target.fits else "[$error i]✗ does not fit[/]"
        elif target.fits:
            fits = "[$success]✓ fits[/]"
        else:
            fits = "[$error b]✗ does not fit[/]"
        limit_style = "dim i" if fit_is_old else "dim"
        limit = f" [{limit_style}]≤{target.max_batch_size:,}[/]" if target.max_batch_size is not None else ""
        write = "" if target.measured else "  [@click=app.write_batch_size][u]w[/u]rite[/]"
        self.update(f"[b]batch[/]{less}{value}{more}{origin} {fits}{limit}{write}")
        self.set_class(target.fits is False, "-does-not-fit")
