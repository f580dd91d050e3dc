"""Attribute vectors: the direction from one group of test images to another in latent space.

Two classes, or two groups box- / lasso-selected on the scatter, give a class-balanced mean
difference (vae_core.aggregate); it becomes a slider after the per-dimension ones at once,
and can be saved with the run (RUN/attributes.json, vae_core.attributes) under a name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from explorer import access, cache, charts, state
from vae_core import aggregate
from vae_core.attributes import Attribute, AttributesError, delete_attributes, read_attributes
from vae_core.attributes import save_attribute as _save_to_run
from vae_core.latent import EncodedSet

WHAT = """
An attribute vector points from group A to group B: the mean posterior mean μ of B minus that
of A, where each class inside a group counts once (so a group that is mostly one class does not
make the vector mostly about that class). Its slider shows z · v for the unit vector v, in
prior standard deviations, and moving it moves z along v, leaving the rest of z alone.
**AUC**: how well z · v alone tells the two groups apart (Mann–Whitney: the chance that a
random B image projects further along v than a random A image; 0.5 = not at all, 1 = always),
measured on the groups' own codes, so slightly optimistic. **Loadings**: v's components,
the latent dimensions it moves.
"""


# --- the attribute sliders of a run ---------------------------------------------------


def _session_attributes(run_path: str) -> dict[str, Attribute]:
    saved = st.session_state.get(state.SLIDERS_ATTRIBUTES)
    return dict(saved[1]) if saved and saved[0] == run_path else {}


def all_attributes(run_path: str) -> tuple[dict[str, Attribute], set[str], list[str]]:
    """(attributes by name, names saved with the run, problems as one line each)."""
    problems = []
    try:
        saved = read_attributes(run_path)
    except AttributesError as e:
        saved = {}
        problems.append(str(e))
    return {**_session_attributes(run_path), **saved}, set(saved), problems


def slider_specs(
    run_path: str, version: int, preset: str, latent_dim: int
) -> tuple[list[dict], list[str]]:
    """The attribute sliders that fit this latent (name, unit direction, range, histogram)
    for the live component and the slider grid; and the refusals / damage, one line each."""
    attributes, _, problems = all_attributes(run_path)
    num_images = len(cache.test_data(run_path)) if attributes else 0
    usable = []
    for attribute in attributes.values():
        why = attribute.mismatch(latent_dim) or attribute.group_mismatch(num_images)
        if why is None:
            usable.append(attribute)
        else:
            problems.append(why)
    if not usable:
        return [], problems
    directions = tuple(tuple(aggregate.unit(a.vector).tolist()) for a in usable)
    tracks = cache.slider_histograms(run_path, version, preset, directions)
    specs = [
        {"name": a.name, "direction": list(v), "range": r, "q": q, "p": p}
        for a, v, r, q, p in zip(
            usable, directions, tracks["ranges"], tracks["q"], tracks["p"], strict=True
        )
    ]
    return specs, problems


def show_problems(problems: Sequence[str]) -> None:
    for line in problems:  # names and file contents are user text: escaped
        st.warning(access.plain(line), icon=":material/warning:")


# --- groups from the scatter ----------------------------------------------------------


def remember_group(run_path: str, selection: dict) -> bool:
    """Keep the dataset indices of a box / lasso selection (True); a click is not one."""
    if not (selection.get("box") or selection.get("lasso")):
        return False
    indices = [int(p["customdata"]) for p in selection.get("points", []) if _index_of(p)]
    st.session_state[state.SCATTER_GROUP] = (run_path, tuple(indices))
    return True


def _index_of(point: dict) -> bool:
    data = point.get("customdata")
    if isinstance(data, list):  # plotly sends a one-element list for some traces
        point["customdata"] = data = data[0] if data else None
    return data is not None


def group_buttons(run_path: str) -> None:
    """On the scatter: make the last box / lasso selection group A or B."""
    group = st.session_state.get(state.SCATTER_GROUP)
    if not group or group[0] != run_path or not group[1]:
        st.caption("Box- or lasso-select points to make an attribute vector from two groups.")
        return
    st.caption(f"{len(group[1])} points selected")
    col_a, col_b = st.columns(2)
    for col, name in ((col_a, "A"), (col_b, "B")):
        col.button(f"Use as group {name}", on_click=_set_group, args=(run_path, name, group[1]))


def _set_group(run_path: str, name: str, indices: tuple[int, ...]) -> None:
    saved = st.session_state.get(state.ATTRIBUTES_GROUPS)
    groups = dict(saved[1]) if saved and saved[0] == run_path else {}
    groups[name] = indices
    st.session_state[state.ATTRIBUTES_GROUPS] = (run_path, groups)


def _scatter_groups(run_path: str) -> dict[str, tuple[int, ...]]:
    saved = st.session_state.get(state.ATTRIBUTES_GROUPS)
    return dict(saved[1]) if saved and saved[0] == run_path else {}


# --- the panel ------------------------------------------------------------------------


def render(run_path: str, version: int) -> None:
    """Pick two groups, see the vector's AUC and loadings, add it as a slider or save it.

    Drawn only while open: the vector's fit, the AUCs and a Plotly chart would otherwise
    delay every opening of the sliders view (and its first image) for a panel most visits
    skip."""
    panel = st.expander(
        "Attribute vectors",
        icon=":material/arrow_outward:",
        key=state.ATTRIBUTES_OPEN,
        on_change="rerun",
    )
    if panel.open:
        with panel:
            st.markdown(WHAT)
            codes, _ = cache.encoded(run_path, version)
            picked = _pick_groups(run_path, codes)
            if picked is not None:
                _preview(run_path, codes, *picked)
            _manage(run_path, codes)
    notice = st.session_state.pop(state.ATTRIBUTES_NOTICE, None)
    if notice:
        (st.success if notice[0] == "ok" else st.error)(access.plain(notice[1]))


def _pick_groups(run_path: str, codes: EncodedSet) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(rows of group A, rows of group B, a description) or None until both are picked."""
    mode = st.segmented_control(
        "Groups from",
        ["Two classes", "Scatter selection"],
        default="Two classes",
        required=True,
        key=state.ATTRIBUTES_MODE,
    )
    if mode == "Two classes":
        names = cache.test_data(run_path).info.class_names
        classes = np.unique(codes.labels).tolist()
        label = lambda c: names[c] if 0 <= c < len(names) else str(c)  # noqa: E731
        col_a, col_b = st.columns(2)
        a = col_a.selectbox("Group A: class", classes, 0, label, key=state.ATTRIBUTES_CLASS_A)
        b = col_b.selectbox(
            "Group B: class", classes, min(1, len(classes) - 1), label, key=state.ATTRIBUTES_CLASS_B
        )
        if a == b:
            st.info("Pick two different classes.")
            return None
        return codes.labels == a, codes.labels == b, f"{label(a)} → {label(b)}"
    groups = _scatter_groups(run_path)
    st.caption(
        f"Group A: {len(groups.get('A', ()))} points, group B: {len(groups.get('B', ()))} "
        "points (box- or lasso-select them on the Scatter view)."
    )
    if not groups.get("A") or not groups.get("B"):
        return None
    in_a, in_b = np.isin(codes.indices, groups["A"]), np.isin(codes.indices, groups["B"])
    return in_a, in_b, f"selection A ({in_a.sum()}) → selection B ({in_b.sum()})"


def _preview(run_path: str, codes: EncodedSet, in_a: np.ndarray, in_b: np.ndarray, source: str):
    try:
        fit = aggregate.fit_attribute(codes.mu, codes.labels, in_a, in_b)
    except ValueError as e:
        st.info(str(e))
        return
    col_auc, col_bars = st.columns([1, 3])
    col_auc.metric("AUC", f"{fit.auc:.3f}", help="separating A from B by z · v; 0.5 = chance")
    col_auc.caption(
        f"|A| = {fit.sizes[0]}, |B| = {fit.sizes[1]}, ‖v‖ = {np.linalg.norm(fit.vector):.2f}"
    )
    col_bars.plotly_chart(charts.loadings_figure(fit.direction), width="stretch")
    st.text_input("Name", value=source, max_chars=60, key=state.ATTRIBUTES_NAME)
    args = (
        run_path,
        tuple(fit.vector.tolist()),
        tuple(codes.indices[in_a].tolist()),
        tuple(codes.indices[in_b].tolist()),
        source,
    )
    refusal = access.current().train_refusal  # saving writes into the run folder
    col_add, col_save = st.columns(2)
    col_add.button("Add slider", on_click=_add, args=(*args, False), width="stretch")
    col_save.button(
        "Add and save with the run",
        on_click=_add,
        args=(*args, True),
        disabled=refusal is not None,
        help=refusal,
        width="stretch",
    )


def _add(
    run_path: str,
    vector: tuple[float, ...],
    group_a: tuple[int, ...],
    group_b: tuple[int, ...],
    source: str,
    save: bool,
) -> None:
    # The name is read here, not bound at render: an edit and the click arrive together.
    name = str(st.session_state.get(state.ATTRIBUTES_NAME) or source).strip()
    try:
        attribute = Attribute(name, vector, group_a, group_b, source)
        if save:
            _save_to_run(run_path, attribute)
    except (AttributesError, OSError) as e:
        st.session_state[state.ATTRIBUTES_NOTICE] = ("error", f"not added: {e}")
        return
    session = _session_attributes(run_path)
    session[name] = attribute
    st.session_state[state.SLIDERS_ATTRIBUTES] = (run_path, session)
    where = "saved with the run" if save else "for this session; save it to keep it"
    st.session_state[state.ATTRIBUTES_NOTICE] = ("ok", f"slider {name!r} added ({where})")


def _manage(run_path: str, codes: EncodedSet) -> None:
    """The run's attribute sliders with their AUC on this snapshot, and a remove button."""
    attributes, saved, _ = all_attributes(run_path)
    if not attributes:
        return
    st.markdown("**Attribute sliders**")
    for name, attribute in attributes.items():
        auc = _auc_now(codes, attribute)
        where = "saved" if name in saved else "this session only"
        auc_text = "AUC here: n/a" if auc is None else f"AUC on this snapshot: {auc:.3f}"
        st.caption(f"{access.plain(name)} · {where} · {auc_text}")
    remove = st.multiselect("Remove", list(attributes), key=state.ATTRIBUTES_REMOVE)
    st.button("Remove selected", on_click=_remove, args=(run_path, remove), disabled=not remove)


def _auc_now(codes: EncodedSet, attribute: Attribute) -> float | None:
    """The saved groups' AUC with this snapshot's codes (None if they are not in them)."""
    if attribute.mismatch(codes.mu.shape[1]) is not None:
        return None
    in_a, in_b = (
        np.isin(codes.indices, attribute.group_a),
        np.isin(codes.indices, attribute.group_b),
    )
    if not in_a.any() or not in_b.any():
        return None
    v = aggregate.unit(attribute.vector)
    return aggregate.separation_auc(codes.mu[in_a] @ v, codes.mu[in_b] @ v)


def _remove(run_path: str, names: list[str]) -> None:
    session = {n: a for n, a in _session_attributes(run_path).items() if n not in names}
    st.session_state[state.SLIDERS_ATTRIBUTES] = (run_path, session)
    st.session_state[state.ATTRIBUTES_REMOVE] = []  # its options are about to lose these names
    if access.current().train_refusal is not None:
        return  # served read-mostly: the run's file stays as it is
    try:
        delete_attributes(run_path, names)
    except (AttributesError, OSError) as e:
        st.session_state[state.ATTRIBUTES_NOTICE] = ("error", f"not removed from the run: {e}")
