"""Smart-HTTP git server: ``git http-backend`` as CGI behind a threaded stdlib HTTP server.

Run as its own process (``python -m tests.support.git_http --root R --port P``) so that
tests stop it by PID like every other server. Optional basic auth: when the environment
variables ``GIT_HTTP_AUTH_USER`` and ``GIT_HTTP_AUTH_PASSWORD`` are set, every request
must carry them, otherwise the answer is ``401`` with ``WWW-Authenticate: Basic`` (the
credentials travel in the environment, not in argv, so ``ps`` does not show them).

We write the CGI glue ourselves rather than use ``http.server.CGIHTTPRequestHandler``:
that class is deprecated, does not understand chunked request bodies (git sends large
pushes chunked) and cannot pass the ``Git-Protocol`` header that protocol v2 needs.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["main", "make_handler"]


def _read_chunked(rfile: BufferedIOBase) -> bytes:
    """Decode an HTTP/1.1 chunked request body."""
    body = bytearray()
    while True:
        size_line = rfile.readline().split(b";", 1)[0].strip()
        size = int(size_line, 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += rfile.read(size)
        rfile.readline()  # CRLF after each chunk


def make_handler(root: Path, auth: tuple[str, str] | None) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one project root and optional credentials."""
    expected = (
        "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        if auth is not None
        else None
    )

    class GitHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _deny(self) -> None:
            body = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            given = self.headers.get("Authorization", "")
            if expected is not None and not hmac.compare_digest(given, expected):
                self._deny()
                return
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = _read_chunked(self.rfile)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urlsplit(self.path)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": url.path,
                "QUERY_STRING": url.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                # A set REMOTE_USER is what enables receive-pack (push) in http-backend.
                "REMOTE_USER": auth[0] if auth is not None else "anonymous",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            proc = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            if proc.stderr:
                sys.stderr.write(proc.stderr.decode(errors="replace"))
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = proc.stdout.partition(b"\n\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name.strip(), value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return GitHandler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    user = os.environ.get("GIT_HTTP_AUTH_USER")
    password = os.environ.get("GIT_HTTP_AUTH_PASSWORD")
    auth = (user, password) if user is not None and password is not None else None
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.root.resolve(), auth))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
