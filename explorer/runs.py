"""Start, attach to and control training runs from the UI (no Streamlit calls here).

The run directory is the source of truth: the UI keeps only a run's name or path, so a
page reload or a second browser tab sees the same runs and never starts a duplicate.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from explorer.access import LOCAL, Policy
from vae_core.catalog import is_available_offline
from vae_core.config import ModelConfig, TrainConfig, build_configs
from vae_core.control import require_trainer
from vae_core.process import (
    RunFolderTaken,
    claim_run_dir,
    resume_training,
    start_fork,
    start_training,
)
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir, is_flocked, list_runs
from vae_core.runfolders import (
    MAX_NAME_CHARS,
    check_run_name,
    find_parent,
    remove_run,
    rename_run,
)
from vae_core.settings import Settings, settings_in_force
from vae_core.status import Status

RUNS_ROOT_ENV = "VAE_EXPLORER_RUNS"
MAX_TRAINERS_ENV = "VAE_EXPLORER_MAX_TRAINERS"  # trainers this app runs at once (default: cores)
SLOTS_DIR = ".trainer-slots"  # under the runs root: one flock-ed file per trainer slot
LOG_TAIL_BYTES = 64 * 1024  # how much of trainer.log the failure box reads, from the end
UI_TORCH_THREADS = 1  # the core the page keeps for itself; trainers share the others
SHOWN_REF_CHARS = 80  # of a ?run= value or typed path echoed in a message (a link may carry 5,000)

# The newest trainer this UI process launched for each run (resolved path). They run in
# their own session, so they outlive the UI and are controlled via the run dir; kept to reap
# them (no zombies) and to show 'starting' until their first status.json (run_status).
_launches: dict[Path, subprocess.Popen] = {}


@dataclass(frozen=True)
class RunChoices:
    """What the user picked in the sidebar: everything needed to build both configs."""

    dataset: str
    architecture: str = "mlp"
    latent_dim: int = 10
    beta: float = 1.0
    lr: float = 1e-3
    beta_schedule: str = "linear"  # constant | linear | cyclical
    warmup_steps: int = 0  # linear: ramp length (0 = off); cyclical: the period
    free_bits: float = 0.0  # lambda, nats per latent dimension
    batch_size: int = 128
    epochs: int = 5
    image_size: int | None = None  # shapes / folder only
    folder: str = ""  # folder only
    num_samples: int | None = None  # shapes only: training images to generate
    name: str = ""  # the run's folder name; "" = a short one made from the choices
    hidden_dim: int = 400
    dataset_options: dict[str, Any] = field(default_factory=dict)  # extra loader options


def runs_root() -> Path:
    """Where new runs go and where the run list looks: $VAE_EXPLORER_RUNS or ./runs."""
    return Path(os.environ.get(RUNS_ROOT_ENV) or "runs").expanduser()


DATASET_SHORT = {"mnist": "mnist", "fashion-mnist": "fmnist", "shapes": "shapes"}


def name_stem(choices: RunChoices) -> str:
    """What a run is, in a few characters: fmnist-mlp-z10-b1 (dataset, model, latent, beta)."""
    dataset = DATASET_SHORT.get(choices.dataset) or _folder_stem(choices.folder)
    return f"{dataset}-{choices.architecture}-z{choices.latent_dim}-b{choices.beta:g}"


def _folder_stem(folder: str) -> str:
    """An image folder's own name, cut to what a run name can hold (else "folder")."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(folder.strip()).name).strip(".-_")[:20]
    return stem or "folder"


def new_run_name(stem: str, root: Path) -> str:
    """stem-N with N one past the highest number any run of that stem under `root` has
    (a removed run's number is not handed out again while a later one exists)."""
    pattern = re.compile(rf"{re.escape(stem)}-(\d+)")
    try:
        taken = [m.group(1) for p in root.iterdir() if (m := pattern.fullmatch(p.name))]
    except OSError:
        taken = []
    return f"{stem}-{max(map(int, taken), default=0) + 1}"


def claim_new_run(root: Path, name: str) -> RunDir:
    """Create a fresh run folder `name` under `root`, suffixed -2, -3... if taken. Two tabs
    pressing Start in the same second, or a double click, each get a folder of their own."""
    for n in range(1, 1000):
        try:
            return claim_run_dir(root / (name if n == 1 else f"{name}-{n}"))
        except RunFolderTaken:
            continue
    raise FileExistsError(f"{root} holds 999 runs named {name}-*; pick another runs folder")


def start_in_new_folder(
    choices: RunChoices,
    root: Path,
    configs: tuple[ModelConfig, TrainConfig],
    pass_fds: tuple[int, ...] = (),
) -> RunDir:
    """process.start_training in the folder the user named (refused if taken), else in the
    first free stem-N; the launched trainer is remembered (run_status)."""
    if choices.name.strip():
        name = check_run_name(choices.name)
        try:
            return _remember(root / name, start_training(*configs, root / name, pass_fds))
        except RunFolderTaken:
            raise FileExistsError(f"a run named {name} exists; pick another name") from None
    stem = name_stem(choices)
    for _ in range(1000):  # another tab may take stem-N between the look and the claim
        path = root / new_run_name(stem, root)
        try:
            return _remember(path, start_training(*configs, path, pass_fds))
        except RunFolderTaken:
            continue
    raise FileExistsError(f"{root} holds too many runs named {stem}-*; pick a name")


def _remember(path: Path, process: subprocess.Popen) -> RunDir:
    _launches[path.resolve()] = process
    return RunDir(path)


def dataset_options(choices: RunChoices) -> dict[str, Any]:
    """The loader options the chosen dataset understands (others are dropped)."""
    options = dict(choices.dataset_options)
    if choices.dataset == "folder":
        if not choices.folder.strip():
            raise ValueError("dataset 'folder' needs the path of a folder of images")
        folder = Path(choices.folder.strip()).expanduser()
        if not folder.is_dir():
            raise ValueError(f"image folder not found: {folder}")
        options["path"] = str(folder.resolve())
    if choices.dataset in ("shapes", "folder") and choices.image_size:
        options["image_size"] = int(choices.image_size)
    if choices.dataset == "shapes" and choices.num_samples:
        options["num_samples"] = int(choices.num_samples)
    return options


def configs_from_choices(choices: RunChoices) -> tuple[ModelConfig, TrainConfig]:
    """Sidebar choices -> the same validated dataclasses the CLI builds (ValueError if bad)."""
    return build_configs(
        choices.dataset,
        architecture=choices.architecture,
        latent_dim=int(choices.latent_dim),
        hidden_dim=int(choices.hidden_dim),
        dataset_options=dataset_options(choices),
        epochs=int(choices.epochs),
        batch_size=int(choices.batch_size),
        lr=float(choices.lr),
        beta=float(choices.beta),
        beta_schedule=choices.beta_schedule,
        warmup_steps=int(choices.warmup_steps),
        free_bits=float(choices.free_bits),
        num_threads=trainer_threads(),
    )


def trainer_threads(running: int | None = None) -> int:
    """Torch threads for a trainer the app starts: the cores but one (which the UI keeps),
    shared with the `running` trainers this app runs already (default: count them).

    Each trainer holds a thread per torch thread, so N trainers at cores - 1 each would hold
    N x cores threads (and one per core is the default limit): the machine's thread limit,
    not its cores, would stop the next Start, with Streamlit's "can't start new thread".
    Split, N trainers hold at most (cores - 1) x (1 + ln N) threads.
    """
    running = running_trainers() if running is None else running
    return max(1, ((os.cpu_count() or 1) - 1) // (running + 1))


def keep_ui_threads() -> None:
    """Hold this (the UI's) process to UI_TORCH_THREADS threads per thread running torch.

    Streamlit runs each session's script in a thread of its own, and every such thread that
    calls torch gets its own OpenMP / MKL team: by default one thread per core (torch's
    set_num_threads does not reach MKL's team in a new thread), so ten sessions redrawing at
    once held ten teams of cores - 1 threads each. Call it before torch is imported (it sets
    the variables OpenMP and MKL read when they load) and again after.
    """
    torch = sys.modules.get("torch")  # never imported here: the first page does without it
    if torch is None:
        # Trainers inherit these, and set their own thread count (trainer_threads) over them.
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(UI_TORCH_THREADS)
    elif torch.get_num_threads() != UI_TORCH_THREADS:
        torch.set_num_threads(UI_TORCH_THREADS)


def start_run(choices: RunChoices, root: Path | None = None, policy: Policy = LOCAL) -> RunDir:
    """Validate the choices, then launch a trainer on a new run dir under `root`.

    Raises before anything is written: PermissionError when `policy` forbids it (training
    off, image folder not allowed), RuntimeError at the trainer limit or for data that
    cannot be loaded (DatasetUnavailable), ValueError for bad hyperparameters or a missing
    folder.
    """
    if choices.name.strip():
        check_run_name(choices.name)  # before anything else is looked at
    root = runs_root() if root is None else root
    check_may_start(choices, policy, root)
    model_config, train_config = configs_from_choices(choices)
    check_data(choices)
    with trainer_slot(root) as slot:
        run = start_in_new_folder(choices, root, (model_config, train_config), (slot,))
        _label_slot(slot, run)
        return run


STOP_WAIT_S = 60.0  # how long "Stop one and start" waits for the stopped trainer to exit
SLOT_POLL_S = 0.2  # how often it looks


def stop_and_start(
    victim: RunDir,
    choices: RunChoices,
    root: Path | None = None,
    policy: Policy = LOCAL,
    wait_s: float = STOP_WAIT_S,
) -> RunDir:
    """At the trainer limit: stop `victim` (one of `slot_holders`), wait for its trainer to
    exit and free its slot, then start `choices`. Checks everything `start_run` checks
    before stopping anything; RuntimeError if the slot is still held after `wait_s`."""
    root = runs_root() if root is None else root
    if choices.name.strip():
        check_run_name(choices.name)
    if policy.train_refusal:
        raise PermissionError(policy.train_refusal)
    configs_from_choices(choices)  # a bad setting is refused before the victim stops
    if victim.path.resolve() not in {run.path.resolve() for run in slot_holders(root)}:
        raise ValueError(f"{victim.path.name} holds no trainer slot here; nothing to stop")
    stop_run(victim)
    deadline = time.monotonic() + wait_s
    while victim.path.resolve() in {run.path.resolve() for run in slot_holders(root)}:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{victim.path.name} is still stopping after {wait_s:.0f} s; press Start "
                "again in a moment"
            )
        time.sleep(SLOT_POLL_S)
    return start_run(choices, root, policy)


IMPORT_TIMEOUT_S = 600  # the dry run builds the model and encodes one batch


@dataclass(frozen=True)
class ImportChoices:
    """The "Open your own model" form: the flags of `python -m vae_core import`."""

    name: str
    model: str = ""  # MODULE:CLASS, or
    diffusers: str = ""  # a diffusers AutoencoderKL folder
    kwargs: str = ""  # JSON
    weights: str = ""  # a safetensors file
    likelihood: str = ""  # "" = the default (bernoulli; gaussian for diffusers)
    input_range: str = ""  # "LOW,HIGH"; "" = the default
    dataset: str = "fashion-mnist"
    folder: str = ""
    image_size: int | None = None

    def args(self, run_dir: Path) -> list[str]:
        pairs = [
            ("--model", self.model),
            ("--diffusers", self.diffusers),
            ("--kwargs", self.kwargs),
            ("--weights", self.weights),
            ("--likelihood", self.likelihood),
            ("--input-range", self.input_range),
            ("--dataset", self.dataset),
            ("--folder", self.folder),
            ("--image-size", str(self.image_size or "")),
        ]
        flags = [f"{flag}={value.strip()}" for flag, value in pairs if value and value.strip()]
        return ["import", f"--run-dir={run_dir}", *flags]


def import_run(choices: ImportChoices, root: Path | None = None, policy: Policy = LOCAL) -> RunDir:
    """Import a user's VAE into a new run under `root` through the CLI's own command, in a
    child process: the user's module is imported there, never in the app. Raises
    PermissionError when `policy` forbids it, ValueError with the command's one line."""
    if policy.import_refusal:
        raise PermissionError(policy.import_refusal)
    if not _is_plain_name(choices.name):
        raise ValueError(f"run name {choices.name!r}: give one folder name (no '/', not '..')")
    run_dir = (runs_root() if root is None else root) / choices.name
    if run_dir.exists():
        raise FileExistsError(f"a run named {choices.name} exists already; pick another name")
    command = [sys.executable, "-m", "vae_core", *choices.args(run_dir)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ValueError(f"the import took longer than {IMPORT_TIMEOUT_S} s; try the CLI") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ValueError((lines[-1] if lines else "the import failed").removeprefix("error: "))
    return RunDir(run_dir)


def needs_download(choices: RunChoices) -> bool:
    """Whether Start must fetch the dataset first (MNIST / Fashion-MNIST not on disk)."""
    return not is_available_offline(choices.dataset)


def check_data(choices: RunChoices) -> None:
    """Refuse, before a run folder exists, a dataset that cannot be loaded (RuntimeError
    DatasetUnavailable, saying what to do); one not on disk is downloaded now."""
    from vae_core.data import ensure_available  # imports torch: only when Start is pressed

    ensure_available(choices.dataset, **dataset_options(choices))


def check_may_start(choices: RunChoices, policy: Policy = LOCAL, root: Path | None = None) -> None:
    """Raise unless `policy` lets this browser start these choices and a trainer slot is free.

    The folder is checked before anything looks at it, so a refused browser cannot even
    learn whether a path exists.
    """
    if policy.train_refusal:
        raise PermissionError(policy.train_refusal)
    if choices.dataset == "folder" and choices.folder.strip():
        refusal = policy.image_folder_refusal(Path(choices.folder.strip()).expanduser())
        if refusal:
            raise PermissionError(refusal)
    check_trainer_capacity(root=root)


def max_trainers(environ: Mapping[str, str] = os.environ) -> int:
    """How many trainers this app runs at once: $VAE_EXPLORER_MAX_TRAINERS, else one per core."""
    value = environ.get(MAX_TRAINERS_ENV, "").strip()
    if not value:
        return os.cpu_count() or 1
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"{MAX_TRAINERS_ENV} must be a whole number >= 1, got {value!r}")
    return limit


def running_trainers(root: Path | None = None) -> int:
    """Trainers this app started (any session, any app process on this runs root) that are
    still alive: the trainer slots whose lock is held."""
    reap_children()
    folder = (runs_root() if root is None else root) / SLOTS_DIR
    try:
        slots = list(folder.glob("slot-*"))
    except OSError:
        return 0
    return sum(is_flocked(path) for path in slots)


def slot_holders(root: Path | None = None) -> list[RunDir]:
    """The runs whose trainers hold this app's trainer slots now, in slot order. A slot
    held by a trainer that did not say which run it trains (started by an older app) is
    left out: `running_trainers` still counts it."""
    folder = (runs_root() if root is None else root) / SLOTS_DIR
    holders = []
    for path in sorted(folder.glob("slot-*")) if folder.is_dir() else ():
        if not is_flocked(path):
            continue
        try:
            run = RunDir(path.read_text().strip())
        except (OSError, ValueError):
            continue
        if run.path.name and run.path.is_dir():  # config.json may not be written yet
            holders.append(run)
    return holders


def _label_slot(slot: int, run: RunDir) -> None:
    """Write into the slot's file which run its trainer trains (for `slot_holders`). Only
    the slot's flock holder writes it; a reader that catches it half-written skips it."""
    os.ftruncate(slot, 0)
    os.pwrite(slot, str(run.path.resolve()).encode(), 0)


def check_trainer_capacity(
    environ: Mapping[str, str] = os.environ, root: Path | None = None
) -> None:
    """RuntimeError when this app already runs its limit of trainers (each takes cores).
    A quick look before anything is written; `trainer_slot` is the atomic check."""
    running, limit = running_trainers(root), max_trainers(environ)
    if running >= limit:
        raise RuntimeError(_at_limit(limit))


def _at_limit(limit: int) -> str:
    return (
        f"{limit} trainers already running (the limit, set by {MAX_TRAINERS_ENV}); stop one first"
    )


@contextlib.contextmanager
def trainer_slot(root: Path | None = None) -> Iterator[int]:
    """A descriptor holding the flock of a free trainer slot; RuntimeError at the limit.

    Counting and launching are one step for every session and app process: the slot is
    locked before the launch, the trainer inherits the descriptor (resume_training's
    pass_fds) and holds the slot until it exits, however it exits.
    """
    limit = max_trainers()
    folder = (runs_root() if root is None else root) / SLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(limit):
        fd = os.open(folder / f"slot-{i}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield fd
        finally:
            os.close(fd)  # a launched trainer keeps its inherited copy, and the lock with it
        return
    raise RuntimeError(_at_limit(limit))


def resume_run(run: RunDir, beta: float | None = None, lr: float | None = None) -> None:
    """Continue a run, optionally with a new beta / lr: a paused trainer is told to resume,
    a dead, failed or stopped one is started again from its newest checkpoint."""
    changes = {k: v for k, v in (("beta", beta), ("lr", lr)) if v is not None}
    if run_status(run).is_live:
        run.send_control("resume", **changes)
    else:
        with trainer_slot() as slot:
            _remember(run.path, resume_training(run, **changes, pass_fds=(slot,)))
            _label_slot(slot, run)


def fork_and_start(
    parent: RunDir,
    step: int | None,
    changes: Mapping[str, Any],
    policy: Policy = LOCAL,
    root: Path | None = None,
) -> RunDir:
    """Fork `parent` at history / checkpoint `step` (None: the newest) into a new folder
    under the runs root, named by fork_name (then -2, -3...): a trainer child builds the
    fork there and trains it (process.start_fork); this process writes only trainer.log.

    Raises before anything is launched: PermissionError when `policy` forbids training,
    RuntimeError at the trainer limit, ValueError for a bad step or setting.
    """
    from vae_core.fork import check_fork  # imports torch: only when a fork is made

    if policy.train_refusal:
        raise PermissionError(policy.train_refusal)
    root = runs_root() if root is None else root
    check_trainer_capacity(root=root)
    plan = check_fork(parent, step, **changes)  # the step and settings, from headers alone
    name = fork_name(parent.path.name, plan.step)
    with trainer_slot(root) as slot:
        for n in range(1, 1000):  # another tab may claim a name between the look and ours
            path = root / (name if n == 1 else f"{name}-{n}")
            try:
                process = start_fork(parent, path, plan.step, changes, pass_fds=(slot,))
            except RunFolderTaken:
                continue
            fork = _remember(path, process)
            _label_slot(slot, fork)
            return fork
    raise FileExistsError(f"{root} holds 999 runs named {name}-*; pick another runs folder")


_FORK_SUFFIX = re.compile(r"(-fork-(\d+|newest)(-\d+)?)+$")


def fork_name(parent_name: str, step: int) -> str:
    """<parent>-fork-<step>: a fork of a fork names its root run and its own step (the
    lineage is in its config), never a chain of suffixes that outgrows a file name; the
    whole, with room for a "-999" of a taken name, within MAX_NAME_CHARS."""
    suffix = f"-fork-{step}"
    base = _FORK_SUFFIX.sub("", parent_name) or parent_name
    return base[: MAX_NAME_CHARS - len(suffix) - 4] + suffix


def pause_run(run: RunDir) -> None:
    _require_trainer(run)
    run.send_control("pause")


def stop_run(run: RunDir) -> None:
    _require_trainer(run)
    run.send_control("stop")


def _require_trainer(run: RunDir) -> None:
    """NoTrainer unless a trainer will obey a command: the CLI's rule (require_trainer), or
    one this app launched that has not written its first status yet (it reads control.json
    as soon as it holds the run)."""
    if run_status(run).display_state != "starting":
        require_trainer(run)


def apply_live(run: RunDir, beta: float, lr: float) -> None:
    """Send new beta / lr to the running trainer (ValueError when out of range, NoTrainer
    when no trainer runs it)."""
    _require_trainer(run)
    run.send_control(None, beta=beta, lr=lr)


def apply_fix(run: RunDir, changes: Mapping[str, Any]) -> None:
    """Send a health alarm's fix (e.g. {"free_bits": 0.5}) to the running trainer as one
    live change; the trainer logs it as a control row, which marks it on the curves.
    ValueError when a value is out of range or the setting cannot change live."""
    if not changes:
        raise ValueError("a fix must change at least one setting")
    _require_trainer(run)
    run.send_control(None, **changes)


def reap_children() -> None:
    """Collect the exit codes of finished trainers this process launched (no zombies). One
    that exited before its first status.json is kept: run_status shows why it failed."""
    for path, process in list(_launches.items()):
        if process.poll() is not None and not _failed_before_status(RunDir(path), process):
            del _launches[path]


def _launch_of(run: RunDir) -> subprocess.Popen | None:
    try:
        return _launches.get(run.path.resolve())
    except OSError:
        return None


def _failed_before_status(run: RunDir, process: subprocess.Popen) -> bool:
    """`process` exited with an error before it wrote status.json (no status.json, or one
    from another, not live, trainer)."""
    if process.poll() in (None, 0):
        return False
    try:
        status = run.read_status()
    except RunDamaged:
        return False
    return status is None or (status.pid != process.pid and not status.is_live)


def resolve_run(ref: str, root: Path | None = None) -> RunDir | None:
    """A run from a name under the root or from any path; None if it is not a run dir.

    Not confined: for a path the person at the machine typed. The URL and the run picker
    go through `open_run`, Attach through `attach_run`.
    """
    if not ref:
        return None
    root = runs_root() if root is None else root
    path = Path(ref).expanduser()
    candidates = [path] if path.is_absolute() or os.sep in ref else [root / ref, path]
    for candidate in candidates:
        run = RunDir(candidate)
        if run.exists():
            return run
    return None


def run_ref(run: RunDir, root: Path | None = None) -> str:
    """How a run is named in the URL: its folder name under the root, else its full path."""
    root = runs_root() if root is None else root
    try:
        if run.path.resolve().parent == root.resolve():
            return run.path.name
    except OSError:
        pass
    return str(run.path.resolve())


def run_names(root: Path | None = None) -> list[str]:
    """Run folder names under the root, newest first (not symlinks leading out of it)."""
    root = runs_root() if root is None else root
    return [run.path.name for run in list_runs(root) if _directly_under(run.path, root)]


def open_run(ref: str, attached: Collection[str] = (), root: Path | None = None) -> RunDir | None:
    """The run a URL (?run=) or the run picker names; None when `ref` is empty.

    Only a folder directly under the root, or a path this browser session attached itself
    (`attached`, resolved paths), so a link cannot open `..`, an absolute path or a symlink
    out of the root. ValueError says why anything else is refused.
    """
    if not ref:
        return None
    root = runs_root() if root is None else root
    if ref in attached:
        run = RunDir(Path(ref))
    elif _is_plain_name(ref) and _directly_under(root / ref, root):
        run = RunDir(root / ref)
    else:
        raise ValueError(
            f"{shown_ref(ref)} is not a run directory under {root}, nor one attached in this "
            "browser session (use Attach a run directory)."
        )
    if run.exists() or _launch_of(run) is not None:  # a new run's trainer still starting
        return run
    failed_start = False
    with contextlib.suppress(OSError):  # e.g. a name too long for the file system
        failed_start = run.log_path.is_file()  # the launcher's file, and no config.json
    if failed_start:
        raise ValueError(f"{shown_ref(ref)} did not start: {launch_failure(run)}")
    raise ValueError(f"{shown_ref(ref)} is not a run directory (no config.json).")


def attach_run(ref: str, policy: Policy = LOCAL, root: Path | None = None) -> RunDir:
    """The run directory typed into Attach, if `policy` lets this browser open it.

    Where the policy keeps browsers inside the root, a name or relative path is taken under
    the root and the check comes before the path is looked at (no probing of the disk).
    PermissionError when refused, ValueError when the folder holds no run.
    """
    root = runs_root() if root is None else root
    if policy.attach_anywhere:
        run = resolve_run(ref.strip(), root)
    else:
        path = root / Path(ref.strip()).expanduser()  # an absolute path replaces the root
        refusal = policy.attach_refusal(path, root)
        if refusal:
            raise PermissionError(refusal)
        run = RunDir(path)
    if run is None or not run.exists():
        raise ValueError(f"{shown_ref(ref)} is not a run directory (it has no config.json).")
    return run


def shown_ref(ref: str, limit: int = SHOWN_REF_CHARS) -> str:
    """`ref` as a message shows it: whole when short, else its start and end around an ellipsis
    with the full length, so a crafted link cannot fill the page (or the log) with its text."""
    if len(ref) <= limit:
        return ref
    keep = limit // 2
    return f"{ref[:keep]}…{ref[-keep // 2 :]} ({len(ref):,} characters)"


def _is_plain_name(name: str) -> bool:
    """A single folder name: no separator, not . or .., nothing a path could climb with."""
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    return name not in ("", ".", "..") and "\0" not in name and not (set(name) & separators)


def _directly_under(path: Path, root: Path) -> bool:
    """Whether `path`, symlinks and .. resolved, is a folder directly inside `root`."""
    try:
        return path.resolve().parent == root.resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loops, NUL bytes
        return False


def run_status(run: RunDir) -> Status:
    """The run's Status (RunDamaged when status.json cannot be read). The trainer writes
    status.json; between a launch from this app and the trainer's first status (status.json
    absent, or an earlier trainer's), 'starting', live while the child is; a child that
    exits before it writes any, 'failed' with trainer.log's last line. Before any status.json
    and without a launch, 'starting': live only while a trainer holds the lock."""
    status = run.read_status()
    launch = _launch_of(run)
    if awaiting_first_status(run):
        return Status("starting", pid=launch.pid, heartbeat=time.time())
    if launch is not None and _failed_before_status(run, launch):
        return replace(
            status or Status("failed"),
            state="failed",
            reason=launch_failure(run, launch.returncode),
            pid=launch.pid,
            locked=False,
        )
    return status or Status("starting", locked=run.is_locked())


def awaiting_first_status(run: RunDir) -> bool:
    """A trainer this app launched for `run` lives and has not written its status yet."""
    launch = _launch_of(run)
    if launch is None or launch.poll() is not None:
        return False
    try:
        status = run.read_status()
    except RunDamaged:
        return False
    return status is None or (status.pid != launch.pid and not status.is_live)


def launch_failure(run: RunDir, returncode: int | None = None) -> str:
    """Why a trainer exited before its first status.json, in one line: trainer.log's last
    (the CLI ends with one 'error: ...' line)."""
    lines = trainer_log_tail(run, max_lines=1).splitlines()
    why = lines[-1].removeprefix("error: ") if lines else "it left no message in trainer.log"
    code = f" (exit code {returncode})" if returncode is not None else ""
    return f"the trainer exited before it started{code}: {why}"


def live_settings(run: RunDir, status: Status | None = None) -> Settings:
    """The settings the trainer is using now (settings_in_force): the config's, then the
    beta / lr of its heartbeat (`status`, read from status.json when None). The sidebar
    reads no metrics log (numpy)."""
    _, cfg = run.read_config()
    status = run.read_status() if status is None else status
    heartbeat = [{"beta": status.beta, "lr": status.lr}] if status is not None else []
    return settings_in_force(cfg, heartbeat)


def trainer_log_tail(run: RunDir, max_lines: int = 15) -> str:
    """The last lines of trainer.log (stdout/stderr of the trainer), for a failure's details.

    Reads at most LOG_TAIL_BYTES from the end: a trainer may have logged for days.
    """
    try:
        with open(run.log_path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read(LOG_TAIL_BYTES)
    except OSError:
        return ""
    if size > LOG_TAIL_BYTES:
        data = data.partition(b"\n")[2]  # the first line was cut: drop it
    text = data.decode(errors="replace")  # keep the \r of tqdm
    # tqdm redraws with carriage returns; keep only what each line finally showed.
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    return "\n".join([line for line in lines if line.strip()][-max_lines:])


def rename(run: RunDir, new_name: str, policy: Policy = LOCAL) -> RunDir:
    """Rename a run folder in place; refused (PermissionError) where `policy` forbids
    training, RunLocked while it trains, FileExistsError / ValueError for the name."""
    if policy.train_refusal:
        raise PermissionError(policy.train_refusal)
    return rename_run(run, new_name)


def delete(run: RunDir, policy: Policy = LOCAL) -> None:
    """Delete a run folder for good; refused like `rename`."""
    if policy.train_refusal:
        raise PermissionError(policy.train_refusal)
    remove_run(run)


def parent_of(run: RunDir) -> RunDir | None:
    """The run a fork branched from, found by its id even after a rename (None if none)."""
    try:
        return find_parent(run, roots=[runs_root()])
    except (ValueError, OSError):  # a damaged config: the picker and Compare still draw
        return None


def state_line(status: Status) -> str:
    """The run's state for people: "running", "stopped at step 700", "finished", "dead"."""
    if status.stopped_by_user:
        return f"stopped at step {status.step}"
    return status.display_state


# One mark per state, so the picker's narrow lines keep the run's name readable.
STATE_MARKS = {
    "starting": "…",
    "running": "▶",
    "paused": "‖",
    "finished": "✓",
    "stopped": "■",
    "failed": "✗",
    "dead": "○",
    "damaged": "!",
    "imported": "◇",
}
MARKS_HELP = (
    "▶ running · ‖ paused · ✓ finished · ■ stopped · ✗ failed · ○ no trainer · "
    "◇ imported · └ a fork"
)


def state_word(run: RunDir) -> str:
    """One word (a key of STATE_MARKS) for the run's state; "damaged" when unreadable."""
    try:
        status = run_status(run)
    except (ValueError, OSError):
        return "damaged"
    return "stopped" if status.stopped_by_user else status.display_state


def run_tree(root: Path | None = None) -> list[tuple[RunDir, int]]:
    """(run, depth) of every run under the root: newest first, each fork right below its
    parent (depth 1, 2... for forks of forks), found by the parent's id after renames."""
    root = runs_root() if root is None else root
    found = [run for run in list_runs(root) if _directly_under(run.path, root)]
    by_id = {run_id: run for run in found if (run_id := _run_id(run)) is not None}
    by_name = {run.path.name: run for run in found}
    children: dict[str, list[RunDir]] = {}
    has_parent = set()
    for run in found:
        parent = _parent_among(run, by_id, by_name)
        if parent is not None and parent.path.name != run.path.name:
            children.setdefault(parent.path.name, []).append(run)
            has_parent.add(run.path.name)
    ordered: list[tuple[RunDir, int]] = []
    seen: set[str] = set()

    def visit(run: RunDir, depth: int) -> None:
        if run.path.name in seen:
            return  # a loop of hand-edited parents: each run once
        seen.add(run.path.name)
        ordered.append((run, depth))
        for child in children.get(run.path.name, []):
            visit(child, depth + 1)

    for run in found:
        if run.path.name not in has_parent:
            visit(run, 0)
    for run in found:  # only runs caught in a parent loop are left
        visit(run, 0)
    return ordered


def _parent_among(
    run: RunDir, by_id: dict[str, RunDir], by_name: dict[str, RunDir]
) -> RunDir | None:
    """The run's parent among the listed runs: by the recorded id, or (forks recorded before
    ids) by the recorded folder's name."""
    link = _parent_link(run)
    if link is None:
        return None
    if "id" in link:
        return by_id.get(link["id"])
    return by_name.get(Path(link["run"]).name)


def _parent_link(run: RunDir) -> dict | None:
    """The fork's recorded {run, step, id}; None for a run that is no fork, or unreadable."""
    try:
        return run.read_parent()
    except (ValueError, OSError):
        return None


def _run_id(run: RunDir) -> str | None:
    try:
        return run.run_id()
    except (ValueError, OSError):
        return None


def picker_label(run: RunDir, depth: int = 0) -> str:
    """The run picker's line: a state mark and the name, forks indented under their parent."""
    indent = "\u00a0\u00a0" * max(depth - 1, 0) + ("└ " if depth else "")
    return f"{indent}{STATE_MARKS.get(state_word(run), '?')} {run.path.name}"


def describe(run: RunDir) -> str:
    """The open run in full: name, state and, for a fork, its parent and branch step."""
    try:
        text = f"{run.path.name}: {state_line(run_status(run))}"
    except (ValueError, OSError):
        return f"{run.path.name}: damaged"
    branch = lineage(run)
    return f"{text}, {branch}" if branch else text


def lineage(run: RunDir) -> str | None:
    """ "forked from <parent> at step N" for a fork (its parent found by id), else None."""
    link = _parent_link(run)
    if link is None:
        return None
    parent = parent_of(run)
    if parent is None:
        return f"forked at step {link['step']} from a run that is gone"
    return f"forked from {parent.path.name} at step {link['step']}"
