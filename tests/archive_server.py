"""A loopback HTTP server that serves a directory tree the way data.binance.vision does, so the
archive client is tested against real HTTP: byte ranges, 404s, a log of every request, and
failures on demand (a connection cut after N bytes, an HTTP error status).

    with ArchiveServer(tree) as server:
        archive = BinanceArchive(base_url=server.url, cache_dir=cache)
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class Served:
    """One request as the server saw it."""

    path: str
    range: str | None
    status: int


class ArchiveServer:
    """Serves ``root`` on 127.0.0.1 (a free port) from a daemon thread while in a ``with``."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.requests: list[Served] = []
        self.ranges = True  # False: ignore Range headers and always send the whole file
        self._cuts: dict[str, list[int]] = {}
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.archive = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def cut(self, path: str, after: int, times: int = 1) -> None:
        """Drop the connection after ``after`` body bytes, for the next ``times`` GETs of
        ``path``."""
        with self._lock:
            self._cuts[_key(path)] = [after] * times

    def fail(self, path: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` GETs of ``path`` with ``status``."""
        with self._lock:
            self._failures[_key(path)] = [status] * times

    def requested(self, path: str) -> list[Served]:
        """The requests made for ``path`` so far."""
        with self._lock:
            return [r for r in self.requests if r.path == _key(path)]

    def _log(self, served: Served) -> None:
        with self._lock:
            self.requests.append(served)

    def _take(self, table: dict[str, list[int]], path: str) -> int | None:
        with self._lock:
            pending = table.get(path)
            return pending.pop() if pending else None

    def _file(self, path: str) -> Path | None:
        candidate = (self.root / path.lstrip("/")).resolve()
        inside = candidate.is_relative_to(self.root)
        return candidate if inside and candidate.is_file() else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        archive: ArchiveServer = self.server.archive
        path = _key(self.path)
        asked = self.headers.get("Range")
        status = archive._take(archive._failures, path)
        file = archive._file(path)
        if status is None and file is None:
            status = 404
        if status is not None:
            return self._empty(archive, path, asked, status)
        data = file.read_bytes()
        match = _RANGE.fullmatch(asked or "") if archive.ranges else None
        first = int(match[1]) if match else 0
        last = min(int(match[2]), len(data) - 1) if match and match[2] else len(data) - 1
        if match and first >= len(data):
            return self._empty(archive, path, asked, 416, {"Content-Range": f"bytes */{len(data)}"})
        body = data[first : last + 1]
        archive._log(Served(path, asked, 206 if match else 200))
        self.send_response(206 if match else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        if match:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.end_headers()
        cut = archive._take(archive._cuts, path)
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True

    def _empty(self, archive: ArchiveServer, path: str, asked: str | None, status: int,
               headers: dict[str, str] | None = None) -> None:
        archive._log(Served(path, asked, status))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        """Quiet: the request log is ``ArchiveServer.requests``."""


def _key(path: str) -> str:
    """A request target or tree-relative path as one form: '/data/spot/...'."""
    return "/" + unquote(urlsplit(path).path).lstrip("/")
