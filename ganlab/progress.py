"""What a run says on the console: progress while it trains, and a short summary when it ends.

On a terminal, progress is a tqdm bar. Anywhere else (a Slurm log, CI, a pipe) a bar redraws as a
new line per update, so a 10-epoch run would leave thousands of bars: there, a plain line is
printed at most every ``LINE_EVERY_S`` seconds, and once at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any

LINE_EVERY_S = 30.0


class Progress:
    """A tqdm bar on a terminal, a progress line every ~30 s elsewhere; nothing when disabled."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream: IO[str] | None = None,
                 every_s: float = LINE_EVERY_S, label: str = "train", position: int = 0) -> None:
        """``label`` names the bar (and starts each line); ``position`` is the bar's terminal row, so that
        processes training side by side (a population's workers) each redraw their own line."""
        self.total, self.step, self.start = total, start, start
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled, self.every_s = enabled, every_s
        self.bar = None
        self.metrics: dict[str, float] = {}
        self.started = self.last_line = time.perf_counter()
        if enabled and self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=label, unit="step", file=self.stream, position=position)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        """Training reached ``step``; ``metrics`` are the last logged values."""
        if not self.enabled:
            return
        moved, self.step, self.metrics = step - self.step, step, metrics
        if self.bar is not None:
            self.bar.update(moved)
            if metrics:
                self.bar.set_postfix(d_loss=f"{metrics['d_loss']:.3f}", g_loss=f"{metrics['g_loss']:.3f}",
                                     refresh=False)
        elif time.perf_counter() - self.last_line >= self.every_s:
            self._line()

    def close(self) -> None:
        """The bar's last state, or a final line."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            self._line()
        self.enabled = False

    def _line(self) -> None:
        now = time.perf_counter()
        rate = (self.step - self.start) / max(now - self.started, 1e-9)
        eta = (self.total - self.step) / rate if rate > 0 else float("nan")
        losses = "".join(f", {k} {self.metrics[k]:.3f}" for k in ("d_loss", "g_loss") if k in self.metrics)
        done = f"{100 * self.step // max(self.total, 1)}% {self.step}/{self.total} steps"
        elapsed = _clock(now - self.started)
        print(f"{self.label}: {done}, {rate:.1f} steps/s, {elapsed} elapsed, eta {_clock(eta)}{losses}",
              file=self.stream, flush=True)
        self.last_line = now


def worker_bar(label: str, worker: int | None) -> tuple[str, int]:
    """A bar's label and terminal row in population worker ``worker`` (its slot: each running worker has its
    own row, so bars drawn side by side do not overwrite each other); ``(label, 0)`` outside a worker."""
    return (label, 0) if worker is None else (f"{label} (worker {worker})", worker)


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: no rate yet
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def run_summary(final: dict[str, Any], run_dir: Path, checkpoint: Path | None, sync_hint: str | None) -> str:
    """The lines a finished run prints: where it wrote, what it scored, where its dashboards are (``sync_hint``:
    one line per logger, e.g. how to upload an offline W&B run)."""
    lines = [f"ganlab: run finished at step {final.get('step')}: {run_dir}"]
    evals = {k.removeprefix("eval/"): v for k, v in final.items()
             if k.startswith("eval/") and not k.endswith("_step") and isinstance(v, (int, float))}
    last = {k: v for k, v in evals.items() if not k.endswith("_best")}
    if last:
        lines.append("  final: " + ", ".join(f"{k} {_number(v)}" for k, v in last.items()))
        best = [f"{k.removesuffix('_best')} {_number(v)} (step {final.get(f'eval/{k}_step')})"
                for k, v in evals.items() if k.endswith("_best")]
        if best:
            lines.append("  best:  " + ", ".join(best))
    elif "d_loss" in final:
        lines.append(f"  final: d_loss {_number(final['d_loss'])}, g_loss {_number(final['g_loss'])}")
    lines.append(f"  samples: {run_dir / 'samples'}")
    if checkpoint is not None:
        lines.append(f"  checkpoint: {checkpoint}")
    if sync_hint:
        lines.extend(f"  {hint}" for hint in sync_hint.splitlines())
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
