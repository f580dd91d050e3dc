"""What goes wrong with a run folder, as exceptions every module of the run layer raises."""

from __future__ import annotations

from pathlib import Path


class RunDamaged(ValueError):
    """A file in a run folder cannot be read or does not hold what it should."""

    def __init__(self, run_path: str | Path, file: str, problem: object) -> None:
        self.run_path = Path(run_path)
        super().__init__(
            f"run {self.run_path.name} is damaged: {file}: {problem} "
            "(fix or remove that file, or move the run folder away)"
        )


class RunLocked(RuntimeError):
    """Another live trainer holds the run folder's lock: one writer per run, always."""
