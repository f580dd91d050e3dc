"""explorer.access and the confinement in explorer.runs: who may start trainers, attach
runs and read folders, untrusted text shown verbatim, the trainer cap, the log tail."""

from __future__ import annotations

import base64
import os
import re
import socket
import string
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from explorer import access, runs
from tools import devserver
from vae_core.process import claim_run_dir
from vae_core.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]
SHAPES = runs.RunChoices(dataset="shapes", latent_dim=3, epochs=1, image_size=28, num_samples=256)
REMOTE = access.policy("0.0.0.0", {})


def _fake_run(path: Path) -> RunDir:
    run = RunDir(path)
    run.write_config(*runs.configs_from_choices(SHAPES))
    return run


# -- served where: the config file and the policy --
def test_config_binds_to_loopback_and_allows_only_loopback_host_names() -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]
    assert access.is_loopback(config["address"])
    assert config["allowedHosts"] and all(access.is_loopback(h) for h in config["allowedHosts"])


def test_config_hides_the_deploy_button() -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer"  # Streamlit shows Deploy in "auto"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),
        (None, False),  # unset: Streamlit listens on every interface
        ("", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("myhost.example", False),
    ],
)
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert access.is_loopback(address) is loopback
    assert access.policy(address, {}).remote is not loopback


def test_on_loopback_everything_is_allowed(tmp_path: Path) -> None:
    local = access.policy("127.0.0.1", {})
    assert local == access.LOCAL
    assert local.train_refusal is None
    assert local.attach_refusal(Path("/elsewhere"), tmp_path) is None
    assert local.image_folder_refusal(Path("/any/folder")) is None


def test_served_beyond_loopback_nothing_starts_or_reads_without_opt_in(tmp_path: Path) -> None:
    assert REMOTE.remote
    assert access.REMOTE_TRAIN_ENV + "=1" in REMOTE.train_refusal
    assert access.REMOTE_ATTACH_ENV in REMOTE.attach_refusal(Path("/elsewhere"), tmp_path)
    assert REMOTE.attach_refusal(tmp_path / "a-run", tmp_path) is None
    assert REMOTE.attach_refusal(tmp_path / "a" / ".." / ".." / "x", tmp_path) is not None
    assert access.IMAGE_FOLDERS_ENV in REMOTE.image_folder_refusal(tmp_path)


def test_operator_opt_ins(tmp_path: Path) -> None:
    allowed, other = tmp_path / "images", tmp_path / "private"
    environ = {
        access.REMOTE_TRAIN_ENV: "1",
        access.REMOTE_ATTACH_ENV: "true",
        access.IMAGE_FOLDERS_ENV: f"{allowed}{os.pathsep}/srv/shared",
    }
    opted = access.policy("0.0.0.0", environ)
    assert opted.train_refusal is None
    assert opted.attach_refusal(Path("/elsewhere"), tmp_path) is None
    assert opted.image_folder_refusal(allowed / "cats") is None
    assert opted.image_folder_refusal(other) is not None
    assert opted.image_folder_refusal(allowed / ".." / "private") is not None
    assert access.policy("0.0.0.0", {access.REMOTE_TRAIN_ENV: "0"}).train_refusal


# -- untrusted text --
@pytest.mark.parametrize(
    "text",
    [
        "[x](http://evil)",
        "![img](http://evil/x.png)",
        "see www.evil.com, WWW.EVIL.COM or mail a@evil.com",
        "$x^2$ :red[hi] <img src=x> **b** _i_ `c` ~~s~~ &amp; \\ # - > |",
        string.punctuation,
    ],
)
def test_plain_escapes_every_markdown_character_and_loses_nothing(text: str) -> None:
    shown = access.plain(text)
    unescaped = re.sub(r"\\(.)", r"\1", shown).replace(access.WORD_JOINER, "")
    assert unescaped == text  # shown verbatim, once markdown resolves the escapes
    punctuation = "[" + re.escape(string.punctuation) + "]"
    escaped_only = rf"(?:\\{punctuation}|(?!{punctuation}).)*"  # every one has its backslash
    assert re.fullmatch(escaped_only, shown.replace(access.WORD_JOINER, ""), re.DOTALL)
    resolved = re.sub(r"\\(.)", r"\1", shown)  # the text GFM searches for bare links
    assert not re.search(r"https?://|www\.|@\w", resolved, re.IGNORECASE)


# -- confinement of run paths --
def test_url_opens_only_runs_directly_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _fake_run(root / "a-run")
    outside = _fake_run(tmp_path / "outside")
    (root / "link").symlink_to(outside.path)
    assert runs.open_run("a-run", root=root).path == root / "a-run"
    assert runs.open_run("", root=root) is None
    for ref in ("..", ".", "../outside", str(outside.path), "a-run/..", "link", "/etc", "x\\y"):
        with pytest.raises(ValueError, match="nor one attached"):
            runs.open_run(ref, root=root)
    assert runs.run_names(root) == ["a-run"]  # the symlink out of the root is not listed


def test_url_opens_a_path_outside_only_once_this_session_attached_it(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    outside = _fake_run(tmp_path / "outside")
    ref = runs.run_ref(runs.attach_run(str(outside.path), access.LOCAL, root), root)
    assert ref == str(outside.path.resolve())
    assert runs.open_run(ref, attached={ref}, root=root).path == outside.path
    with pytest.raises(ValueError):
        runs.open_run(ref, attached=set(), root=root)  # another session, or after a reload


def test_a_name_without_config_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no config\.json"):
        runs.open_run("empty", root=tmp_path)


def test_remote_attach_stays_inside_the_root_without_looking_outside(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _fake_run(root / "a-run")
    outside = _fake_run(tmp_path / "outside")
    assert runs.attach_run("a-run", REMOTE, root).path.resolve() == (root / "a-run").resolve()
    for ref in (str(outside.path), "../outside", str(tmp_path / "does-not-exist")):
        with pytest.raises(PermissionError, match=access.REMOTE_ATTACH_ENV):
            runs.attach_run(ref, REMOTE, root)
    opted = access.policy("0.0.0.0", {access.REMOTE_ATTACH_ENV: "1"})
    assert runs.attach_run(str(outside.path), opted, root).path == outside.path
    with pytest.raises(ValueError, match="not a run directory"):
        runs.attach_run(str(tmp_path), access.LOCAL, root)


# -- starting trainers --
def test_remote_start_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    with pytest.raises(PermissionError, match=access.REMOTE_TRAIN_ENV):
        runs.start_run(SHAPES, root, REMOTE)
    allowed = tmp_path / "allowed"
    opted = access.policy(
        "0.0.0.0", {access.REMOTE_TRAIN_ENV: "1", access.IMAGE_FOLDERS_ENV: str(allowed)}
    )
    secret = runs.RunChoices(dataset="folder", folder=str(tmp_path / "secret"))
    with pytest.raises(PermissionError, match=access.IMAGE_FOLDERS_ENV):
        runs.start_run(secret, root, opted)  # refused, not "not found": nothing was probed
    inside = runs.RunChoices(dataset="folder", folder=str(allowed / "missing"))
    with pytest.raises(ValueError, match="image folder not found"):
        runs.start_run(inside, root, opted)  # allowed, so it goes on to the usual checks
    assert not root.exists()


def test_max_trainers_comes_from_the_environment() -> None:
    assert runs.max_trainers({}) == (os.cpu_count() or 1)
    assert runs.max_trainers({runs.MAX_TRAINERS_ENV: "3"}) == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match=runs.MAX_TRAINERS_ENV):
            runs.max_trainers({runs.MAX_TRAINERS_ENV: bad})


def _slot_holder(root: Path) -> subprocess.Popen:
    """A process that holds one trainer slot, as a launched trainer does (its fd inherited)."""
    with runs.trainer_slot(root) as slot:
        sleeper = "import time; time.sleep(60)"
        return subprocess.Popen([sys.executable, "-c", sleeper], pass_fds=(slot,))


def test_start_is_refused_at_the_trainer_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(runs.MAX_TRAINERS_ENV, "1")
    root = tmp_path / "runs"
    holder = _slot_holder(root)
    monkeypatch.setattr(runs, "_launches", {})  # started by another app process: not ours
    try:
        assert runs.running_trainers(root) == 1
        with pytest.raises(RuntimeError) as refused:
            runs.start_run(SHAPES, root)
        assert str(refused.value) == (
            "1 trainers already running (the limit, set by VAE_EXPLORER_MAX_TRAINERS); "
            "stop one first"
        )
        assert runs.run_names(root) == []
    finally:
        holder.kill()
        holder.wait()
    assert runs.running_trainers(root) == 0  # the dead one frees its slot
    runs.check_trainer_capacity(root=root)


def test_sessions_pressing_start_at_once_never_exceed_the_limit(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(runs.MAX_TRAINERS_ENV, "1")
    root = tmp_path / "runs"
    launched: list[subprocess.Popen] = []

    def slow_launch(model_config, train_config, run_dir, pass_fds: tuple[int, ...] = ()):
        # a trainer as the app starts it, slow to start: the window the check must close
        claim_run_dir(run_dir).write_config(model_config, train_config)  # what it writes first
        sleeper = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=pass_fds
        )
        launched.append(sleeper)
        time.sleep(0.5)
        return sleeper

    monkeypatch.setattr(runs, "start_training", slow_launch)
    outcomes: list[object] = []

    def start() -> None:
        try:
            outcomes.append(runs.start_run(SHAPES, root))
        except RuntimeError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(launched) == 1 and len(runs.run_names(root)) == 1
        assert sum(isinstance(o, RuntimeError) for o in outcomes) == 2
    finally:
        for process in launched:
            process.kill()
            process.wait()
        runs.reap_children()


# -- trainer.log --
def test_trainer_log_tail_reads_only_the_end_of_a_big_log(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    with open(run.log_path, "wb") as f:
        f.write(b"x" * (8 * 2**20) + b"\n")  # 8 MB of one progress line
        f.write(b"".join(b"line %d\n" % i for i in range(100)) + b"ValueError: boom\n")
    tracemalloc.start()
    try:
        tail = runs.trainer_log_tail(run, max_lines=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tail == "line 98\nline 99\nValueError: boom"
    assert peak < 4 * runs.LOG_TAIL_BYTES  # the 8 MB were never read


def test_trainer_log_tail_drops_a_line_cut_by_the_window(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    run.log_path.write_bytes(b"y" * runs.LOG_TAIL_BYTES + b"\nlast\n")
    assert runs.trainer_log_tail(run) == "last"


# -- the server itself --
def _websocket_handshake(url: str, host: str) -> str:
    """The status line Streamlit answers a WebSocket upgrade with, for a given Host."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


@pytest.mark.slow
def test_server_refuses_a_foreign_host_header(tmp_path: Path) -> None:
    """What a DNS-rebinding page sends: the app's address, but its own name as Host."""
    with devserver.serve("explorer/app.py", env={runs.RUNS_ROOT_ENV: str(tmp_path)}) as url:
        port = url.rsplit(":", 1)[1]
        assert " 101 " in _websocket_handshake(url, f"127.0.0.1:{port}")
        assert " 101 " in _websocket_handshake(url, f"localhost:{port}")
        assert " 403 " in _websocket_handshake(url, f"rebound.example:{port}")
        # The live charts' route, served beside the page by explorer/app.py, answers the
        # same hosts, and nothing to a token no session holds.
        assert _get_status(f"{url}/_vae/live?feed=guess&have=0", f"127.0.0.1:{port}") == 404
        assert _get_status(f"{url}/_vae/live?feed=guess&have=0", f"rebound.example:{port}") == 403


def _get_status(url: str, host: str) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


# -- which pages may open a session --
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("origin", "host", "accepted"),
    [
        (None, "localhost:8501", True),  # no Origin: not a browser page
        ("http://localhost:8501", "localhost:8501", True),  # the app's own page
        ("http://127.0.0.1:8501", "127.0.0.1:8501", True),
        ("http://[::1]:8501", "[::1]:8501", True),
        ("http://LOCALHOST:8501", "localhost:8501", True),
        ("http://127.0.0.1:8501", "localhost:8501", True),  # allowed host, the app's port
        ("https://app.example.com", "app.example.com", True),  # same origin behind a proxy
        ("http://app.example.com:8080", "app.example.com", False),
        ("http://localhost:9999", "localhost:8501", False),  # another local port: the attack
        ("http://127.0.0.1:3000", "127.0.0.1:8501", False),
        ("http://localhost", "localhost:8501", False),  # port 80
        ("http://evil.example:8501", "localhost:8501", False),
        ("null", "localhost:8501", False),  # a sandboxed frame or a file:// page
        ("file://", "localhost:8501", False),
        ("http://localhost:99999", "localhost:8501", False),  # not a port
    ],
)
def test_only_the_apps_own_origin_may_open_a_session(
    origin: str | None, host: str, accepted: bool
) -> None:
    headers = {"Host": host} | ({"Origin": origin} if origin is not None else {})
    refusal = access.origin_refusal(headers, LOOPBACK_HOSTS, 8501)
    assert (refusal is None) is accepted
    if refusal:
        assert "\n" not in refusal and "not from the app's own address" in refusal


def test_an_operator_named_host_is_accepted_on_the_apps_port() -> None:
    headers = {"host": "10.0.0.5:8501", "origin": "http://vae.lab.example:8501"}
    assert access.origin_refusal(headers, ["*.lab.example"], 8501) is None
    assert access.origin_refusal(headers, ["*"], 8501) is None
    assert access.origin_refusal(headers, ["other.example"], 8501) is not None
    assert access.origin_refusal(headers, [], 8501) is not None  # unset: own origin only


def _session_text(url: str, origin: str, seconds: float = 30) -> bytes:
    """Everything the app sends a WebSocket session opened with `origin`, until its first
    script run finishes: protobuf bytes, in which every shown text appears as UTF-8."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from websockets.sync.client import connect

    received = b""
    stream = url.replace("http://", "ws://") + "/_stcore/stream"
    with connect(stream, origin=origin, subprotocols=["streamlit"], open_timeout=20) as ws:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        ws.send(rerun.SerializeToString())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and b"Pick a dataset" not in received:
            try:
                received += ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if b"not from the app's own address" in received:
                break
    return received


@pytest.mark.slow
def test_a_page_on_another_local_port_cannot_use_the_app(tmp_path: Path) -> None:
    with devserver.serve("explorer/app.py", env={runs.RUNS_ROOT_ENV: str(tmp_path)}) as url:
        port = int(url.rsplit(":", 1)[1])
        own = _session_text(url, f"http://127.0.0.1:{port}")
        assert b"Pick a dataset" in own and b"own address" not in own
        foreign = _session_text(url, f"http://localhost:{devserver.free_port()}")
        assert b"not from the app's own address" in foreign
        assert b"Pick a dataset" not in foreign and b"Start" not in foreign
