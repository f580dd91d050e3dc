"""The Training view's "Reparameterisation vs score function" expander: on demand, how noisy
the encoder's ELBO gradient is under each estimator, on the current snapshot (vae_core.gradvar).
"""

from __future__ import annotations

import streamlit as st

from explorer import cache, state
from vae_core.rundir import RunDir

SAMPLES = 100  # single-sample estimates per estimator
BATCH_SIZE = 64  # the first test images
LABELS = {
    "reparam": "Reparameterisation",
    "score": "Score function",
    "score_baseline": "Score function + baseline",
}
WHAT = (
    "S = {samples} single-sample estimates of ∇φ ELBO (φ: the encoder's {params:,} "
    "parameters; ELBO averaged over the first {batch} test images, in nats). Variance: per "
    "parameter, summed over φ. Reparameterisation: ∇φ log p(x | μ + σε). Score function "
    "(REINFORCE): log p(x|z) · ∇φ log q(z|x) with z held fixed; the baseline subtracts the mean "
    "of log p(x|z') over the other draws. The analytic KL's gradient is exact and the same in "
    "all three: included, it adds no variance."
)
WHY = (
    "Why it matters: an estimate k times noisier needs k times more samples for the same "
    "precision; the reparameterisation trick is what lets one z per image train the encoder."
)


def render(run: RunDir, version: int) -> None:
    """A button that measures on snapshot `version` (the current one); the last result stays
    on screen."""
    with st.expander(
        "Reparameterisation vs score function", key=state.TRAINING_GRADVAR_OPEN, on_change="rerun"
    ) as box:
        if not box.open:
            return
        if version == 0:
            st.caption("Needs the first snapshot.")
            return
        run_path = str(run.path)
        if st.button(f"Measure on snapshot v{version}", key=state.TRAINING_GRADVAR_BUTTON):
            summary = cache.gradient_variance(run_path, version, SAMPLES, BATCH_SIZE)
            st.session_state[state.TRAINING_GRADVAR] = (run_path, version, summary)
        measured = st.session_state.get(state.TRAINING_GRADVAR)
        if measured is None or measured[0] != run_path:
            st.caption(WHY)
            return
        _draw(*measured[1:])


def _draw(version: int, summary: dict) -> None:
    cols = st.columns(3)
    for col, name in zip(cols, LABELS, strict=True):
        ratio = summary.get(f"ratio_{name}", 1.0)
        col.metric(
            LABELS[name],
            f"{summary[f'var_{name}']:.3g}",
            f"{ratio:,.0f}× reparam." if ratio >= 100 else f"{ratio:.3g}× reparam.",
            delta_color="off",
            delta_arrow="off",
        )
    what = WHAT.format(
        samples=summary["samples"], params=summary["encoder_params"], batch=summary["batch_size"]
    )
    st.caption(f"Snapshot v{version}. {what}")
    st.caption(WHY)
