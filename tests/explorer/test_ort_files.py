"""The route that serves ONNX Runtime Web's wasm gzipped, as the browser streams and compiles it."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from streamlit.web.server.starlette.starlette_gzip_middleware import SelectiveGZipMiddleware

from explorer import ort_files

WASM = b"\0asm\1\0\0\0" + bytes(range(256)) * 64  # stands in for the 14 MB binary


@pytest.fixture
def ort_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ort_files.WASM).write_bytes(WASM)
    (tmp_path / f"{ort_files.WASM}.gz").write_bytes(gzip.compress(WASM))
    monkeypatch.setattr(ort_files, "ORT_DIR", tmp_path)
    return tmp_path


def _get(headers: dict[str, str], method: str = "GET", base: str = "") -> tuple[int, dict, bytes]:
    """(status, headers, raw body) from the route, over ASGI as uvicorn would call it, behind
    the gzip middleware Streamlit puts in front of an st.App's routes."""
    gzip_layer = Middleware(SelectiveGZipMiddleware, minimum_size=500, base_url=base)
    app = Starlette(routes=ort_files.routes(base), middleware=[gzip_layer])
    sent: list[dict] = []
    requests = iter([{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> dict:
        # The request, then a client that stays connected until the response is sent.
        return next(requests, None) or await asyncio.Event().wait()

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": ort_files.url(base),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8501),
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    start, *rest = sent
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], head, b"".join(m.get("body", b"") for m in rest)


def test_the_gzipped_binary_goes_out_as_it_is_marked_as_wasm(ort_dir: Path) -> None:
    status, head, body = _get({"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200
    assert head["content-type"] == "application/wasm"  # what instantiateStreaming requires
    assert head["content-encoding"] == "gzip"
    assert body == (ort_dir / f"{ort_files.WASM}.gz").read_bytes()  # not compressed again
    assert gzip.decompress(body) == WASM


def test_a_browser_without_gzip_or_a_missing_gz_gets_the_plain_binary(ort_dir: Path) -> None:
    status, head, body = _get({})
    assert (status, body, head["content-encoding"]) == (200, WASM, "identity")
    (ort_dir / f"{ort_files.WASM}.gz").unlink()
    status, head, body = _get({"Accept-Encoding": "gzip"})
    # plain, and not squeezed by the middleware on every request under the plain file's ETag
    assert (status, body, head["content-encoding"]) == (200, WASM, "identity")


def test_a_current_copy_is_a_304_and_a_head_request_has_no_body(ort_dir: Path) -> None:
    _, head, _ = _get({"Accept-Encoding": "gzip"})
    status, again, body = _get({"Accept-Encoding": "gzip", "If-None-Match": head["etag"]})
    assert (status, body) == (304, b"")
    assert again["etag"] == head["etag"] and again["content-encoding"] == "gzip"
    status, head, body = _get({"Accept-Encoding": "gzip"}, method="HEAD")
    assert (status, body, head["content-type"]) == (200, b"", "application/wasm")


def test_under_a_base_url_path_and_without_onnx_runtime(ort_dir: Path) -> None:
    assert ort_files.url("/lab/") == "/lab/_vae/ort-wasm-simd-threaded.wasm"
    status, _, body = _get({"Accept-Encoding": "gzip"}, base="lab")
    assert status == 200 and gzip.decompress(body) == WASM
    for name in (ort_files.WASM, f"{ort_files.WASM}.gz"):
        (ort_dir / name).unlink()
    status, _, body = _get({"Accept-Encoding": "gzip"})
    assert status == 404 and b"make setup" in body
