"""The Training panel's ticks over plain HTTP: its iframe fetches what is new from a route of
the app's own, so a tick is not a Streamlit rerun.

Why: any Streamlit rerun, however small, makes a watching tab re-render the whole page's
React tree eight times or more (0.11-0.14 core at one rerun a second); a fetch costs the
page only the iframe's own redraw.

The page script publishes one Feed per session and panel, under a random token it keeps in
the session: how to read one tick of the run (what each slot shows, how often to refresh,
and what the Streamlit page around the iframe shows). The iframe polls

    GET {server.baseUrlPath}/_vae/live?feed=TOKEN&have=SEQ

and gets live_charts' update ({seq, base, ops, interval_ms}), with `rerun: true` when the
page around it is out of date (the phase, the sidebar's controls, an alarm or a progress
note); the iframe then asks Streamlit for a rerun, which publishes the feed again.

The token is the capability: the route answers 404 to any other, so only the page that
holds it (through its session) can read the feed; and, as the app's WebSocket does, it
answers 403 to a Host that server.allowedHosts does not name (a DNS-rebinding page).
Feeds unused for FEED_TTL_S are dropped; an iframe that comes back asks for a rerun, which
publishes its feed again.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from explorer import access, guard

if TYPE_CHECKING:
    from explorer.components import live_charts

PATH = "/_vae/live"
FEED_TTL_S = 600.0
# Each feed numbers its updates from its own block, and every publish gets a new generation:
# a browser's `have` from a feed dropped and published again can never look current.
_SEQ_BLOCK = 1 << 32
_feed_numbers = itertools.count(1)
_generations = itertools.count(1)
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tick:
    """One reading of a run as the panel shows it."""

    slots: Mapping[str, live_charts.Slot]
    interval_ms: int  # when the browser should ask again; 0: only when the page redraws
    page: object  # what the Streamlit page around the iframe shows (compared with ==)


class Feed:
    """A panel's source of ticks, and what its browser was last sent."""

    read: Callable[[], Tick]
    drawn_for: object  # the Tick.page the Streamlit page around the iframe was drawn for
    generation: int  # of the last publish
    used: float  # time.monotonic() of the last poll or publish

    def __init__(self, read: Callable[[], Tick], drawn_for: object) -> None:
        self._memo: dict[str, Any] = {"seq": next(_feed_numbers) * _SEQ_BLOCK}
        # One poll or publish at a time: the memo follows one browser, and a poll compares
        # its tick with the `drawn_for` of the same publish.
        self._lock = threading.Lock()
        self.publish(read, drawn_for)

    def publish(self, read: Callable[[], Tick], drawn_for: object) -> int:
        """Read ticks with `read` from now on, for a page drawn for `drawn_for` (a Tick.page);
        returns this publish's generation."""
        with self._lock:
            self.read, self.drawn_for, self.used = read, drawn_for, time.monotonic()
            self.generation = next(_generations)
            return self.generation

    def poll(self, have: int) -> dict[str, Any]:
        """The update for a browser holding update `have`, and whether the page must redraw."""
        from explorer.components import live_charts  # numpy: not before a page needs it

        with self._lock:
            self.used = time.monotonic()
            tick = self.read()
            update = live_charts.next_update(self._memo, have, tick.slots, tick.interval_ms)
            return {**update, "rerun": tick.page != self.drawn_for}


_feeds: dict[str, Feed] = {}
_feeds_lock = threading.Lock()


def new_token() -> str:
    return secrets.token_urlsafe(16)


def publish(token: str, read: Callable[[], Tick], drawn_for: object) -> int:
    """Serve `read` under `token` (replacing what was there, but keeping what its browser was
    sent); returns the publish's generation, new every time (unique in this process)."""
    now = time.monotonic()
    with _feeds_lock:
        for stale in [t for t, f in _feeds.items() if now - f.used > FEED_TTL_S]:
            del _feeds[stale]
        feed = _feeds.get(token)
        if feed is None:
            feed = _feeds[token] = Feed(read, drawn_for)
            return feed.generation
    return feed.publish(read, drawn_for)


def poll(token: str, have: int) -> dict[str, Any] | None:
    """The feed's next update for a browser holding `have`; None for an unknown token."""
    with _feeds_lock:
        feed = _feeds.get(token)
    return None if feed is None else feed.poll(have)


def url(base_url_path: str) -> str:
    """The route's path under Streamlit's server.baseUrlPath."""
    base = base_url_path.strip("/")
    return f"/{base}{PATH}" if base else PATH


def _endpoint(request: Request) -> JSONResponse:
    """GET ?feed=TOKEN&have=SEQ. A plain function: Starlette runs it in its thread pool, off
    the event loop that serves every session's WebSocket."""
    if not access.host_allowed(request.headers.get("host"), _allowed_hosts()):
        return _json({"error": "this host name is not in server.allowedHosts"}, 403)
    try:
        have = int(request.query_params.get("have", "0"))
    except ValueError:
        return _json({"error": "have must be an integer"}, 400)
    try:
        update = poll(request.query_params.get("feed", ""), have)
    except guard.RUN_ERRORS as e:
        # The run went away or a file is damaged mid-run: the page's rerun says so in one line.
        _LOG.info("live feed: %s", e)
        return _json({"rerun": True, "seq": have, "base": have, "ops": {}, "interval_ms": 0})
    if update is None:
        return _json({"error": "unknown feed"}, 404)
    return _json(update)


def _allowed_hosts() -> list[str]:
    return st.get_option("server.allowedHosts") or []


def _json(content: Mapping[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(dict(content), status, headers={"Cache-Control": "no-store"})


def routes(base_url_path: str) -> list[Route]:
    """The routes to serve beside the app (explorer/app.py hands them to st.App)."""
    return [Route(url(base_url_path), _endpoint, methods=["GET"])]
