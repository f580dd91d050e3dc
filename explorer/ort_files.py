"""ONNX Runtime Web's wasm binary, served so the browser compiles it while it downloads.

The live-drag component (explorer/components/live_sliders) runs decoders with the vendored
ONNX Runtime Web, whose 14 MB wasm binary `make setup` also writes gzipped (3.7 MB). As a
component file the .gz arrives as opaque bytes that the page must unzip in JavaScript before
it can compile them; served here with `Content-Encoding: gzip` and `Content-Type:
application/wasm`, the browser unzips it in its network stack and `instantiateStreaming`
compiles it as the bytes arrive, and keeps the compiled code for the next visit.

    GET {server.baseUrlPath}/_vae/ort-wasm-simd-threaded.wasm
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from explorer.components.live_sliders import ORT_DIR

WASM = "ort-wasm-simd-threaded.wasm"
PATH = f"/_vae/{WASM}"


def url(base_url_path: str) -> str:
    """The route's path under Streamlit's server.baseUrlPath."""
    base = base_url_path.strip("/")
    return f"/{base}{PATH}" if base else PATH


def _endpoint(request: Request) -> Response:
    """The gzipped binary as it is when the browser takes gzip (all do), else the plain one;
    a 304 when the browser's copy is current (the file changes only with the npm package)."""
    gzipped = ORT_DIR / f"{WASM}.gz"
    use_gzip = gzipped.is_file() and "gzip" in request.headers.get("accept-encoding", "")
    path = gzipped if use_gzip else ORT_DIR / WASM
    if not path.is_file():
        return Response("ONNX Runtime Web is not installed here (make setup)", 404)
    etag = _etag(path)
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    # "identity": Streamlit's gzip middleware leaves a response that names its encoding alone
    # (it would squeeze the plain 14 MB on every request, under the plain file's ETag).
    headers["Content-Encoding"] = "gzip" if use_gzip else "identity"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="application/wasm", headers=headers)


def _etag(path: Path) -> str:
    stat = path.stat()
    return f'"{path.suffix.strip(".")}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'


def routes(base_url_path: str) -> list[Route]:
    """The route to serve beside the app (explorer/app.py hands it to st.App)."""
    return [Route(url(base_url_path), _endpoint, methods=["GET", "HEAD"])]
