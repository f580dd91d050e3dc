"""Who may drive the app, and untrusted text shown as text.

On loopback (the default, .streamlit/config.toml) the browser is the person at the machine
and may do everything. Served beyond loopback, a browser may watch and explore, but starts
no trainer, attaches no folder outside the runs root and reads no image folder unless the
operator opts in through the environment variables below. `plain()` escapes text from URLs,
files, paths and exceptions so Streamlit's markdown shows it verbatim. `origin_refusal()`
turns away a session opened by a page from another origin: Streamlit itself accepts any
http://localhost:<port> page, so a page served on another local port could drive the app.
"""

from __future__ import annotations

import ipaddress
import os
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st

REMOTE_TRAIN_ENV = "VAE_EXPLORER_REMOTE_TRAIN"  # "1": remote browsers start / control trainers
REMOTE_ATTACH_ENV = "VAE_EXPLORER_REMOTE_ATTACH"  # "1": ... attach runs outside the runs root
IMAGE_FOLDERS_ENV = "VAE_EXPLORER_IMAGE_FOLDERS"  # "/a:/b": image folders remote browsers read
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Policy:
    """What a browser may do; `remote` says whether the app is served beyond loopback."""

    remote: bool = False
    train: bool = True  # start, resume, pause, stop, apply live
    attach_anywhere: bool = True  # attach run directories outside the runs root
    image_folders: tuple[Path, ...] | None = None  # allowed roots (resolved); None: any

    @property
    def train_refusal(self) -> str | None:
        """Why this browser may not start or control trainers; None when it may."""
        if self.train:
            return None
        return (
            "Training controls are off: this app is served beyond loopback. "
            f"The operator turns them on with {REMOTE_TRAIN_ENV}=1."
        )

    @property
    def import_refusal(self) -> str | None:
        """Why this browser may not open a user's own model (importing runs its code)."""
        if not self.remote:
            return None
        return (
            "Opening your own model imports and runs its Python code, which a browser may do "
            "only when the app is served on loopback. On the server, run "
            "`python -m vae_core import ...` and the run appears here."
        )

    def attach_refusal(self, path: Path, root: Path) -> str | None:
        """Why `path` may not be attached; None when it may (inside the root, or opted in)."""
        if self.attach_anywhere or _inside(path, root):
            return None
        return (
            f"Only runs under {root} can be attached here: this app is served beyond "
            f"loopback. The operator allows other paths with {REMOTE_ATTACH_ENV}=1."
        )

    def image_folder_refusal(self, folder: Path) -> str | None:
        """Why `folder` may not be read as a dataset; None when it may."""
        if self.image_folders is None or any(_inside(folder, r) for r in self.image_folders):
            return None
        allowed = os.pathsep.join(str(r) for r in self.image_folders) or "none"
        return (
            f"Image folder not allowed: this app is served beyond loopback and reads only "
            f"folders under {IMAGE_FOLDERS_ENV} (now: {allowed})."
        )


LOCAL = Policy()  # the person at the machine: everything allowed


def is_loopback(address: str | None) -> bool:
    """Whether a listen address reaches only this machine (unset or 0.0.0.0: all interfaces)."""
    host = (address or "").strip().strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # empty, or a host name that may resolve anywhere
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def policy(address: str | None, environ: Mapping[str, str]) -> Policy:
    """The policy for an app listening on `address`, with the operator's opt-ins in `environ`."""
    if is_loopback(address):
        return LOCAL
    folders = environ.get(IMAGE_FOLDERS_ENV, "").split(os.pathsep)
    return Policy(
        remote=True,
        train=_flag(environ, REMOTE_TRAIN_ENV),
        attach_anywhere=_flag(environ, REMOTE_ATTACH_ENV),
        image_folders=tuple(Path(f).expanduser().resolve() for f in folders if f.strip()),
    )


def server_address() -> str | None:
    """Streamlit's `server.address` option: where this app listens (None when unset)."""
    return st.get_option("server.address")


def current() -> Policy:
    """The policy of the running app."""
    return policy(server_address(), os.environ)


def origin_refusal(
    headers: Mapping[str, str], allowed_hosts: Sequence[str], app_port: int
) -> str | None:
    """Why a session whose WebSocket sent these headers may not use the app; None when it may.

    Accepted: no Origin (not a browser: it could do anything without a page anyway), the
    app's own origin (Origin names the host and port the socket was opened to, as Host says),
    or a host in `allowed_hosts` (Streamlit's server.allowedHosts) on the app's port.
    """
    origin = _header(headers, "origin")
    if origin is None:
        return None
    page, own = _host_port(origin, with_scheme=True), _host_port(_header(headers, "host"))
    if page is not None and (_same(page, own) or _allowed(page, allowed_hosts, app_port)):
        return None
    shown = " ".join(origin.split())[:80]
    return (
        f"This page was opened from {shown}, not from the app's own address, so it may not "
        "use the app. Open the app's address directly."
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _host_port(text: str | None, with_scheme: bool = False) -> tuple[str, int | None] | None:
    """(host name, port) of an origin (scheme://host[:port]: the scheme's port when none is
    written) or of a Host header (None when none is written), or None if malformed."""
    if not text:
        return None
    try:
        parts = urlsplit(text if with_scheme else f"//{text}")
        if with_scheme and parts.scheme not in ("http", "https"):
            return None  # "null" (a sandboxed frame, a file:// page) or anything odd
        port = parts.port or ({"http": 80, "https": 443}.get(parts.scheme))
    except ValueError:  # a port out of range or not a number
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    return (host, port) if host else None


def _same(page: tuple[str, int | None], own: tuple[str, int | None] | None) -> bool:
    """Whether the page's origin is the address the socket was opened to (a Host without a
    port, as behind a proxy, matches http's and https's own ports)."""
    if own is None or page[0] != own[0]:
        return False
    return page[1] == own[1] or (own[1] is None and page[1] in (80, 443))


def _allowed(page: tuple[str, int | None], allowed_hosts: Sequence[str], app_port: int) -> bool:
    """Whether the page's host is one server.allowedHosts names (as Streamlit matches them:
    exact, `*.domain` or `*`) and the page is on the app's own port."""
    host, port = page
    return port == app_port and _named(host, allowed_hosts)


def host_allowed(host_header: str | None, allowed_hosts: Sequence[str]) -> bool:
    """Whether a request's Host names a host in `allowed_hosts` (none given: any), as the
    app's WebSocket checks it: a page whose DNS name was rebound to this machine is refused."""
    if not allowed_hosts:
        return True
    own = _host_port(host_header)
    return own is not None and _named(own[0], allowed_hosts)


def _named(host: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether server.allowedHosts names `host` (exact, `*.domain` or `*`)."""
    for pattern in (p.strip().lower().rstrip(".") for p in allowed_hosts):
        bare = pattern.strip("[]")
        if (
            pattern == "*"
            or host in (pattern, bare)
            or (pattern.startswith("*.") and host.endswith(pattern[1:]))
        ):
            return True
    return False


def check_origin() -> None:
    """Stop this script run, with one line, when the session came from a foreign page."""
    refusal = origin_refusal(
        st.context.headers,
        st.get_option("server.allowedHosts") or (),
        int(st.get_option("server.port")),
    )
    if refusal:
        st.error(refusal, icon=":material/block:")
        st.stop()


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in _TRUE


def _inside(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or below it once symlinks and `..` are resolved."""
    return Path(path).expanduser().resolve().is_relative_to(Path(root).expanduser().resolve())


# CommonMark lets a backslash escape any ASCII punctuation, and the escaped character is
# shown as itself: no link, image, emphasis, HTML, math ($) or Streamlit directive (:red[])
# can start from it.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
# GFM finds bare URLs and e-mail addresses in the text *after* escapes are resolved, so an
# invisible word joiner goes where its patterns would match: between ":" and "//", after a
# "www" before ".", and after "@".
_AUTOLINK = re.compile(r"(?<=\\:)(?=\\/\\/)|(?<=www)(?=\\\.)|(?<=\\@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """`text` escaped so that st.markdown / st.error / st.caption show it verbatim."""
    escaped = _PUNCTUATION.sub(r"\\\1", str(text))
    return _AUTOLINK.sub(WORD_JOINER, escaped)
