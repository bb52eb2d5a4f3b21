"""Progress of a run: a tqdm bar on a terminal, plain log lines otherwise, nothing when quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Rows done, rows/s, ETA and the count of error rows.

    Parameters
    ----------
    total:
        Rows this process will attribute (``None`` when unknown).
    enabled:
        ``False`` prints nothing.
    stream:
        Where to write (default ``sys.stderr``).
    bar:
        ``None``: a tqdm bar when ``stream`` is a terminal, log lines otherwise; ``True``/``False`` force it.
    interval:
        Seconds between two log lines (non-terminal mode).
    """

    def __init__(self, total: int | None, *, enabled: bool = True, stream: TextIO | None = None,
                 bar: bool | None = None, interval: float = 10.0, label: str = "sciattr"):
        self.total, self.enabled, self.stream = total, enabled, stream or sys.stderr
        self.interval, self.label = interval, label
        self.done = self.errors = 0
        self.start = time.monotonic()
        self._last = self.start
        self._logged_at = -1
        self._bar = None
        isatty = getattr(self.stream, "isatty", lambda: False)()
        if enabled and (bar if bar is not None else isatty):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="rows", file=self.stream, dynamic_ncols=True, smoothing=0.1,
                             desc=label)
            self._bar.set_postfix(errors=0)

    def update(self, rows: int, errors: int = 0) -> None:
        """Count ``rows`` more rows, ``errors`` of them bad."""
        self.done += rows
        self.errors += errors
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(rows)
            self._bar.set_postfix(errors=self.errors, refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.log()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            head = f"{self.done:,}/{self.total:,} rows ({100 * self.done / self.total:.1f}%)"
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta = f", ETA {_duration(left)}" if rate > 0 else ""
        else:
            head, eta = f"{self.done:,} rows", ""
        return f"{self.label}: {head}, {rate:.1f} rows/s, {self.errors:,} errors{eta}"

    def log(self) -> None:
        if self.enabled and self._bar is None and self._logged_at != self.done:
            self._logged_at = self.done
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self.log()
