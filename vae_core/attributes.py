"""Named attribute vectors saved with a run: RUN/attributes.json.

The trainer is the single writer of the run's training files, so attribute vectors live in
a file of their own. Writers read-modify-write it under an flock on RUN/.attributes.lock
and replace it atomically; readers validate everything (plain JSON, never pickle) and turn
any damage into one AttributesError line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vae_core.atomic import atomic_write_json

FILE_NAME = "attributes.json"
LOCK_NAME = ".attributes.lock"
FORMAT = 1
MAX_NAME = 60  # characters
MAX_GROUP = 10_000  # test-image indices kept per group
MAX_INDEX = 2**31  # an index past this is no test image (and would overflow numpy's int64)


class AttributesError(ValueError):
    """attributes.json is damaged, or an attribute is not valid; the message is one line."""


@dataclass(frozen=True)
class Attribute:
    """A direction in latent space from group A to group B.

    vector: the balanced mean difference (D,); group_a / group_b: the test-image indices it
    was fitted on (they stay valid across snapshots, so its AUC can be measured again).
    """

    name: str
    vector: tuple[float, ...]
    group_a: tuple[int, ...] = ()
    group_b: tuple[int, ...] = ()
    source: str = ""  # how the groups were picked, e.g. "class 3 vs class 8"

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.vector or not all(_finite(v) for v in self.vector):
            raise AttributesError(f"attribute {self.name!r}: the vector must be finite numbers")
        if not any(self.vector):
            raise AttributesError(f"attribute {self.name!r}: the vector is zero")
        # Its length, squared as the unit vector takes it: it must not overflow to inf.
        if not math.isfinite(sum(float(v) * float(v) for v in self.vector)):
            raise AttributesError(f"attribute {self.name!r}: the vector is too long (overflows)")

    def group_mismatch(self, num_images: int) -> str | None:
        """Why the saved groups can't be indices into a test set of this size; None if they
        can."""
        if all(0 <= i < num_images for i in (*self.group_a, *self.group_b)):
            return None
        return f"attribute {self.name!r} names test images beyond this run's {num_images}: refused"

    def mismatch(self, latent_dim: int) -> str | None:
        """Why this vector can't be used in a latent of this size; None if it can."""
        if len(self.vector) == latent_dim:
            return None
        return (
            f"attribute {self.name!r} has {len(self.vector)} values but this run's "
            f"latent_dim is {latent_dim}: refused"
        )

    def to_dict(self) -> dict:
        return {
            "vector": list(self.vector),
            "group_a": list(self.group_a),
            "group_b": list(self.group_b),
            "source": self.source,
        }


def _finite(v: float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def check_name(name: object) -> str:
    """A name is 1 to MAX_NAME characters of text, not all blank."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise AttributesError(f"an attribute name must be 1 to {MAX_NAME} characters of text")
    return name


def path(run_path: str | Path) -> Path:
    return Path(run_path) / FILE_NAME


def read_attributes(run_path: str | Path) -> dict[str, Attribute]:
    """The run's saved attributes by name; {} when there is no file yet."""
    try:
        text = path(run_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise AttributesError(f"{FILE_NAME} cannot be read: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AttributesError(
            f"{FILE_NAME} is damaged (not JSON: {e.msg}, line {e.lineno})"
        ) from None
    except RecursionError:
        raise AttributesError(f"{FILE_NAME} is damaged (JSON nested too deeply)") from None
    entries = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise AttributesError(f'{FILE_NAME} is damaged: expected {{"attributes": {{...}}}}')
    return {name: _attribute(name, entry) for name, entry in entries.items()}


def _attribute(name: str, entry: object) -> Attribute:
    if not isinstance(entry, dict):
        raise AttributesError(f"{FILE_NAME}: attribute {name!r} is not an object")
    return Attribute(
        name=check_name(name),
        vector=_numbers(name, "vector", entry.get("vector"), float),
        group_a=_numbers(name, "group_a", entry.get("group_a", []), int),
        group_b=_numbers(name, "group_b", entry.get("group_b", []), int),
        source=str(entry.get("source", ""))[:200],
    )


def _numbers(name: str, field: str, value: object, kind: type) -> tuple:
    """A flat list of JSON numbers (ints for indices) as a tuple, else one clear error."""
    ok_types = (int,) if kind is int else (int, float)
    if not isinstance(value, list) or not all(
        isinstance(v, ok_types) and not isinstance(v, bool) for v in value
    ):
        raise AttributesError(f"{FILE_NAME}: {field} of {name!r} must be a flat list of numbers")
    if kind is int and (len(value) > MAX_GROUP or any(not 0 <= v < MAX_INDEX for v in value)):
        raise AttributesError(f"{FILE_NAME}: {field} of {name!r} is not a list of image indices")
    if kind is float and not all(_finite(v) for v in value):
        raise AttributesError(f"{FILE_NAME}: {field} of {name!r} must be finite numbers")
    return tuple(kind(v) for v in value)


@contextlib.contextmanager
def _locked(run_path: str | Path) -> Iterator[None]:
    """An exclusive flock on the run's attributes lock file (not on the trainer's `lock`)."""
    with open(Path(run_path) / LOCK_NAME, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write(run_path: str | Path, attributes: dict[str, Attribute]) -> None:
    body = {name: a.to_dict() for name, a in attributes.items()}
    atomic_write_json(path(run_path), {"format": FORMAT, "attributes": body})


def save_attribute(run_path: str | Path, attribute: Attribute) -> None:
    """Add (or replace, by name) one attribute. A damaged file is left alone: AttributesError."""
    with _locked(run_path):
        attributes = read_attributes(run_path)
        attributes[attribute.name] = attribute
        _write(run_path, attributes)


def delete_attributes(run_path: str | Path, names: Sequence[str]) -> None:
    """Remove these attributes from the file (names not in it are ignored)."""
    with _locked(run_path):
        attributes = read_attributes(run_path)
        _write(run_path, {n: a for n, a in attributes.items() if n not in names})
