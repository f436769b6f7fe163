"""The embedded default data: scikit-image's photographs, served to img2dataset over loopback HTTP.

``franca demo`` needs a URL list without the internet. The photographs that
``franca_core.data.sources.sample_images`` returns are written once as PNG files, a URL list
pointing at ``http://127.0.0.1:<port>/<name>.png`` is written beside them, and a small threaded
HTTP server serves the folder while curation downloads. The port is chosen on first use and kept in
the URL list, so a rerun gives the same list (curation resumes only on the same input).
"""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

EMBEDDED = "embedded"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_embedded_source(folder: Path) -> tuple[Path, int]:
    """Write the photographs and ``urls.parquet`` once; returns (URL list, port)."""
    urls_path, port_path = folder / "urls.parquet", folder / "port.json"
    if urls_path.exists() and port_path.exists():
        return urls_path, int(json.loads(port_path.read_text())["port"])
    from franca_core.data.sources import SKIMAGE_PHOTOS, sample_images

    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images = sample_images()
    for index, name in enumerate(SKIMAGE_PHOTOS):
        images[index].save(images_dir / f"{name}.png")
    port = _free_port()
    rows = [
        {"url": f"http://127.0.0.1:{port}/{name}.png", "caption": name.replace("_", " ")}
        for name in SKIMAGE_PHOTOS
    ]
    pd.DataFrame(rows).to_parquet(urls_path, index=False)
    port_path.write_text(json.dumps({"port": port}))
    return urls_path, port


@contextmanager
def serve_folder(folder: Path, port: int) -> Iterator[str]:
    """Serve ``folder`` on ``127.0.0.1:port`` in a thread while the block runs; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="embedded-images", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def resolved_source(source: str, out_dir: Path) -> Iterator[Path]:
    """The source path to curate; for ``embedded``, the URL list while its server runs."""
    if source != EMBEDDED:
        yield Path(source)
        return
    urls, port = write_embedded_source(out_dir / EMBEDDED)
    with serve_folder(out_dir / EMBEDDED / "images", port):
        yield urls
