"""The Training view's health panel: the alarms vae_core.health raises on the live metrics,
each with its explanation and one-click fixes that go to the trainer through control.json
(the trainer logs each as a control row, so the curves mark it with a dashed line).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import streamlit as st

from explorer import access, runs, state
from vae_core.health import Alarm, Fix
from vae_core.rundir import RunDir
from vae_core.status import Status

FIX_NOTE_S = 120.0  # how long "fix sent" stays under the panel
BOXES = {"error": st.error, "warning": st.warning}
CHECKED = "posterior collapse, KL vanishing, dead dimensions, gradients, stalled loss"


NO_ALARM = f"Health: no alarm ({CHECKED})."


def fix_note_until(run: RunDir) -> float:
    """Until when (time.time()) render() shows the note of the fix last sent to `run` from this
    session; 0 when there is none. With the alarms, whether render() draws anything."""
    sent = _fix_sent(run)
    return 0.0 if sent is None else sent[2] + FIX_NOTE_S


def render(run: RunDir, status: Status, alarms: Sequence[Alarm]) -> None:
    """One box per alarm, most severe first, with its fixes as buttons, and the note of a fix
    sent lately. The line that says there is no alarm (NO_ALARM) is the caller's to show."""
    refusal = access.current().train_refusal
    live = status.is_live and not status.on_other_host
    for alarm in alarms:
        _alarm(run, alarm, disabled=refusal is not None or not live)
    if alarms and refusal:
        st.caption(access.plain(refusal))
    elif alarms and not live:
        st.caption("The fixes apply to a live run; resume it to use them.")
    _last_fix_note(run)


def _alarm(run: RunDir, alarm: Alarm, disabled: bool) -> None:
    with st.container(border=True, key=state.sub_key(state.TRAINING_ALARM, alarm.kind)):
        BOXES[alarm.severity](
            f"**{access.plain(alarm.title)}** (step {alarm.step}): "
            f"{access.plain(alarm.explanation)}"
        )
        if not alarm.fixes:
            return
        columns = st.columns(len(alarm.fixes))
        for i, (column, fix) in enumerate(zip(columns, alarm.fixes, strict=True)):
            column.button(
                fix.label,
                key=state.sub_key(state.sub_key(state.TRAINING_FIX, alarm.kind), str(i)),
                disabled=disabled,
                width="stretch",
                on_click=_apply,  # a callback: it runs before the sidebar is drawn
                args=(run, fix),
            )


def _apply(run: RunDir, fix: Fix) -> None:
    """Send `fix` live, unless this browser may not control trainers; remember the outcome
    for _last_fix_note. The sidebar's live inputs follow once the trainer applies it."""
    error = access.current().train_refusal  # the buttons are disabled; a hand-made event
    if error is None:
        try:
            runs.apply_fix(run, fix.changes)
        except (ValueError, OSError) as e:
            error = str(e)
    # The sidebar's live inputs follow once the trainer applies it (keyed by the value in force).
    st.session_state[state.TRAINING_LAST_FIX] = (str(run.path), fix.label, time.time(), error)


def _fix_sent(run: RunDir) -> tuple[str, str, float, str | None] | None:
    """The fix last sent to `run` from this session, while its note shows."""
    sent = st.session_state.get(state.TRAINING_LAST_FIX)
    if not sent or sent[0] != str(run.path) or time.time() - sent[2] > FIX_NOTE_S:
        return None
    return sent


def _last_fix_note(run: RunDir) -> None:
    """Say which fix was sent, for a while: its alarm goes once the trainer applies it."""
    sent = _fix_sent(run)
    if sent is None:
        return
    _, label, when, error = sent
    if error is not None:
        st.error(f"Not sent: {access.plain(label)}: {access.plain(error)}")
        return
    at = time.strftime("%H:%M:%S", time.localtime(when))
    st.success(
        f"Sent at {at}: {access.plain(label)}. The trainer applies it within a second; "
        "a dashed line marks it on the curves, and the health checks start again from there."
    )
