"""Progress bars for many jobs: one line per job and an overall line. On a terminal they redraw in
place; elsewhere (a CI log) each change is one plain line, with no control characters."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

WIDTH = 24


@dataclass
class JobLine:
    name: str
    status: str = "queued"
    step: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        if self.status == "succeeded":
            return 1.0
        return min(1.0, self.step / self.total) if self.total else 0.0


def _bar(frac: float) -> str:
    full = round(frac * WIDTH)
    return "#" * full + "-" * (WIDTH - full)


class Bars:
    def __init__(self, names: list[str], out: TextIO | None = None,
                 tty: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.lines = [JobLine(n) for n in names]
        self._drawn = 0
        self._logged: dict[int, tuple[str, int]] = {}

    def update(self, i: int, status: str, step: int | None = None,
               total: int | None = None) -> None:
        line = self.lines[i]
        line.status = status
        if step is not None:
            line.step = step
        if total is not None:
            line.total = total

    def _text(self, line: JobLine) -> str:
        pct = f"{line.fraction:4.0%}"
        steps = f" {line.step}/{line.total}" if line.total else ""
        return f"{line.name[:28]:<28} [{_bar(line.fraction)}] {pct} {line.status}{steps}"

    def _overall(self) -> str:
        done = sum(1 for ln in self.lines if ln.status in ("succeeded", "failed", "cancelled"))
        # An ended job counts as done whatever its outcome: the bar says how much is left to wait.
        frac = sum(1.0 if ln.status in ("failed", "cancelled") else ln.fraction
                   for ln in self.lines) / max(1, len(self.lines))
        return f"{'overall':<28} [{_bar(frac)}] {frac:4.0%} {done}/{len(self.lines)} done"

    def draw(self) -> None:
        if self.tty:
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F")
            rows = [self._text(ln) for ln in self.lines] + [self._overall()]
            self.out.write("".join(f"\x1b[2K{r}\n" for r in rows))
            self._drawn = len(rows)
        else:
            # One line per job when its status changes or it passes another quarter; then the
            # overall line.
            changed = False
            for i, ln in enumerate(self.lines):
                key = (ln.status, int(ln.fraction * 4))
                if self._logged.get(i) != key:
                    self._logged[i] = key
                    self.out.write(self._text(ln) + "\n")
                    changed = True
            if changed:
                self.out.write(self._overall() + "\n")
        self.out.flush()
