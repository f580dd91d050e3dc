"""The Training panel's live feed: what a polling iframe gets, from the feed and through the
route, and that ticks need no Streamlit rerun."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from starlette.requests import Request

from explorer import live_feed
from explorer.components import live_charts

TOKEN = "t" * 22


class _Run:
    """A stand-in run for the feed: its step moves when the test says so."""

    def __init__(self) -> None:
        self.step, self.page, self.reads = 10, ("live", "no notes"), 0

    def __call__(self) -> live_feed.Tick:
        self.reads += 1
        slots = {"readouts": live_charts.Readouts((("Step", str(self.step)),))}
        return live_feed.Tick(slots, 1000, self.page)


@pytest.fixture
def run():
    run = _Run()
    live_feed.publish(TOKEN, run, drawn_for=run.page)
    yield run
    live_feed._feeds.pop(TOKEN, None)


def _get(query: dict[str, str], host: str = "127.0.0.1:8501") -> tuple[int, dict]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": live_feed.PATH,
        "query_string": urlencode(query).encode(),
        "headers": [(b"host", host.encode())],
    }
    response = live_feed._endpoint(Request(scope))
    return response.status_code, json.loads(response.body)


def test_a_new_iframe_gets_everything_then_only_what_changed(run) -> None:
    first = live_feed.poll(TOKEN, have=0)
    assert first["base"] is None and first["ops"] == {"readouts": {"readouts": [["Step", "10"]]}}
    assert first["rerun"] is False and first["interval_ms"] == 1000
    same = live_feed.poll(TOKEN, have=first["seq"])
    assert same["ops"] == {} and same["seq"] == first["seq"]
    run.step = 20
    moved = live_feed.poll(TOKEN, have=first["seq"])
    assert moved["base"] == first["seq"] and moved["ops"]["readouts"]["readouts"] == [
        ["Step", "20"]
    ]


def test_a_page_out_of_date_is_told_to_rerun_and_publishing_again_settles_it(run) -> None:
    seq = live_feed.poll(TOKEN, have=0)["seq"]
    run.page = ("finished", "no notes")  # e.g. the trainer stopped: the sidebar must redraw
    assert live_feed.poll(TOKEN, have=seq)["rerun"] is True
    first_generation = live_feed._feeds[TOKEN].generation
    generation = live_feed.publish(TOKEN, run, drawn_for=run.page)  # what the rerun does
    assert generation > first_generation  # the iframe fetches at once for a new one
    after = live_feed.poll(TOKEN, have=seq)
    # Published again, the feed still knows what this browser holds: nothing is resent.
    assert after["rerun"] is False and after["ops"] == {} and after["seq"] == seq


def test_an_unknown_or_idle_feed_is_gone(run, monkeypatch) -> None:
    assert live_feed.poll("someone-elses", have=0) is None
    now = live_feed.time.monotonic()
    monkeypatch.setattr(live_feed.time, "monotonic", lambda: now + live_feed.FEED_TTL_S + 1)
    live_feed.publish("another", _Run(), drawn_for=None)  # publishing drops idle feeds
    assert live_feed.poll(TOKEN, have=0) is None
    live_feed._feeds.pop("another")


def test_a_feed_published_again_after_it_was_dropped_resends_everything(run) -> None:
    """The iframe still holds the dropped feed's update: it must not look current."""
    generation = live_feed._feeds[TOKEN].generation
    have = live_feed.poll(TOKEN, have=0)["seq"]
    del live_feed._feeds[TOKEN]  # unused for FEED_TTL_S
    assert live_feed.publish(TOKEN, run, drawn_for=run.page) > generation
    update = live_feed.poll(TOKEN, have=have)
    assert update["base"] is None and update["seq"] != have
    assert update["ops"] == {"readouts": {"readouts": [["Step", "10"]]}}


def test_the_route_serves_the_feed_and_refuses_what_it_should(run) -> None:
    status, body = _get({"feed": TOKEN, "have": "0"})
    assert status == 200 and body["ops"]["readouts"]["readouts"] == [["Step", "10"]]
    assert _get({"feed": "nope", "have": "0"}) == (404, {"error": "unknown feed"})
    assert _get({"feed": TOKEN, "have": "x"})[0] == 400
    # A page whose DNS name was rebound to this machine sends its own name as Host.
    assert _get({"feed": TOKEN, "have": "0"}, host="rebound.example:8501")[0] == 403


def test_a_run_that_cannot_be_read_asks_the_page_to_say_why(run) -> None:
    def damaged() -> live_feed.Tick:
        raise OSError("status.json: permission denied")

    live_feed.publish(TOKEN, damaged, drawn_for=None)
    status, body = _get({"feed": TOKEN, "have": "3"})
    # The page's rerun shows the one-line error; polling stops until it is drawn again.
    assert status == 200 and body == {
        "rerun": True, "seq": 3, "base": 3, "ops": {}, "interval_ms": 0
    }  # fmt: skip


def test_the_route_lives_under_the_base_url_path() -> None:
    assert live_feed.url("") == "/_vae/live"
    assert live_feed.url("/tools/vae/") == "/tools/vae/_vae/live"
    (route,) = live_feed.routes("tools")
    assert route.path == "/tools/_vae/live"
