"""Every session-state key is named once, in explorer/state.py: views and panels use the
names, never a string literal (a typo there would make a second, silent key)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from explorer import state

REPO = Path(__file__).resolve().parents[2]
UI_MODULES = sorted(
    [*(REPO / "explorer" / "views").glob("*.py"), *(REPO / "explorer" / "panels").glob("*.py")]
)


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _is_session_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "session_state"


def _is_form(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "form"
    )


def _names_a_key(target: ast.AST) -> bool:
    return isinstance(target, ast.Name) and target.id.lower().split("_")[-1] == "key"


def literal_keys(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal used as a session-state or widget key."""
    found = []
    for node in ast.walk(ast.parse(source)):
        key = None
        if isinstance(node, ast.keyword) and node.arg == "key":
            key = node.value  # st.button(..., key="...") and panels' key= prefixes
        elif isinstance(node, ast.Subscript) and _is_session_state(node.value):
            key = node.slice  # st.session_state["..."]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and _is_session_state(node.func.value)
            and node.args
        ):
            key = node.args[0]  # st.session_state.get("...") / pop / setdefault
        elif isinstance(node, ast.Compare) and any(map(_is_session_state, node.comparators)):
            key = node.left  # "..." in st.session_state
        elif _is_form(node) and node.args:
            key = node.args[0]  # st.form("...")
        elif isinstance(node, ast.Assign) and any(map(_names_a_key, node.targets)):
            key = node.value  # key = f"..." before the widget
        if key is not None and _is_text(key):
            found.append((key.lineno, ast.unparse(key)))
    return found


def test_views_and_panels_name_no_session_state_key_by_literal():
    offenders = {
        str(path.relative_to(REPO)): keys
        for path in UI_MODULES
        if (keys := literal_keys(path.read_text()))
    }
    assert offenders == {}


def test_the_scan_sees_each_way_of_writing_a_key():
    source = """
st.button("Go", key="a.go")
st.text_input("Name", key=f"a.{name}")
st.session_state["a.x"] = 1
st.session_state.get("a.y")
if "a.z" in st.session_state: pass
with st.form("a.form"): pass
fix_key = f"a.fix.{i}"
st.button("Go", key=state.A_GO)
"""
    assert [text for _, text in sorted(literal_keys(source))] == [
        "'a.go'",
        "f'a.{name}'",
        "'a.x'",
        "'a.y'",
        "'a.z'",
        "'a.form'",
        "f'a.fix.{i}'",
    ]


def test_each_key_name_in_state_has_its_own_value():
    keys = {
        name: value
        for name, value in vars(state).items()
        if name.isupper() and isinstance(value, str) and "." in value
    }
    repeated = [value for value, count in Counter(keys.values()).items() if count > 1]
    assert len(keys) > 60
    assert repeated == []
