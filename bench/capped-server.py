#!/usr/bin/env python3
"""An HTTP/1.1 file server that caps each connection's rate, for the
benchmarks: a server that limits every client connection (as many mirrors
do), where the cap must hold across keep-alive requests. nginx's limit_rate
starts a fresh allowance with every request, so a client that asks for many
short ranges on one connection would get far more than the cap.

Serves the files of one directory with a strong ETag, single byte ranges
(Range, If-Range) and keep-alive. Each connection has a token bucket of
RATE bytes per second with a burst of 64 KiB.

Usage: capped-server.py DIR HOST PORT RATE
"""
import email.utils
import http.server
import os
import re
import socket
import socketserver
import sys
import time

PIECE = 16 * 1024
BURST = 64 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go in separate writes: without this, Nagle's
        # algorithm holds the body back for the client's delayed ACK (40 ms
        # a request), as no real server does.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One bucket per connection: it lives as long as the handler.
        self.tokens = float(BURST)
        self.refilled = time.monotonic()

    def log_message(self, *args):
        pass

    def spend(self, n):
        """Waits until n bytes may go out at the connection's rate."""
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.refilled) * RATE)
        self.refilled = now
        self.tokens -= n
        if self.tokens < 0:
            time.sleep(-self.tokens / RATE)

    def target(self):
        name = self.path.split("?", 1)[0].lstrip("/")
        if not name or "/" in name or name.startswith("."):
            return None
        path = os.path.join(ROOT, name)
        return path if os.path.isfile(path) else None

    def answer(self, body):
        path = self.target()
        if path is None:
            self.send_error(404)
            return
        st = os.stat(path)
        size = st.st_size
        etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'
        start, end, status = 0, size, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and (if_range is None or if_range == etag):
            start = int(m[1])
            end = min(size, int(m[2]) + 1) if m[2] else size
            if start >= size or start >= end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if not body:
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                data = f.read(min(PIECE, left))
                if not data:
                    break
                self.spend(len(data))
                self.wfile.write(data)
                left -= len(data)

    def do_GET(self):
        try:
            self.answer(True)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_HEAD(self):
        self.answer(False)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    ROOT, host, port, RATE = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    if RATE <= 0:
        sys.exit("RATE: want bytes per second above 0")
    Server((host, port), Handler).serve_forever()
