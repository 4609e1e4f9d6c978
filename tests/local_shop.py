"""A shop's image server on 127.0.0.1 for the tests: good images under /img/<name>, and
the failures real ones show (404, slow, truncated, oversized, redirect loops, pages
that are not images, a server that fails twice before it serves)."""

import collections
import contextlib
import http.server
import os
import threading
import time

from conftest import SAMPLE_DIR


def jpeg(name: str) -> bytes:
  with open(os.path.join(SAMPLE_DIR, "images", name), "rb") as f:
    return f.read()


class Shop(http.server.BaseHTTPRequestHandler):
  photos = {}
  hits = collections.Counter()

  def log_message(self, *args):
    del args

  def _send(self, status, body=b"", kind="image/jpeg", length=None, headers=()):
    self.send_response(status)
    self.send_header("Content-Type", kind)
    self.send_header("Content-Length", str(len(body) if length is None else length))
    for key, value in headers:
      self.send_header(key, value)
    self.end_headers()
    try:
      self.wfile.write(body)
    except BrokenPipeError:  # The client gave up first (the slow route's timeout).
      pass

  def do_GET(self):
    path = self.path
    self.hits[path] += 1
    if path.startswith("/img/"):
      self._send(200, self.photos[path.removeprefix("/img/")])
    elif path == "/missing.jpg":
      self._send(404, b"not found", "text/plain")
    elif path == "/slow.jpg":
      time.sleep(3)
      self._send(200, self.photos["a"])
    elif path == "/truncated.jpg":
      body = self.photos["a"]
      self._send(200, body[:len(body) // 2], length=len(body))
    elif path == "/huge.jpg":
      self._send(200, b"\xff" * 300_000)
    elif path == "/loop.jpg":
      self._send(302, headers=[("Location", "/loop.jpg")])
    elif path == "/moved.jpg":
      self._send(301, headers=[("Location", "/img/b")])
    elif path == "/page.html":
      self._send(200, b"<html>a product page</html>", "text/html")
    elif path == "/broken.jpg":
      self._send(200, b"not a jpeg at all")
    elif path == "/flaky.jpg":  # Fails twice, then serves.
      if self.hits[path] <= 2:
        self._send(503, b"busy", "text/plain")
      else:
        self._send(200, self.photos["c"])
    else:
      self._send(404, b"", "text/plain")


@contextlib.contextmanager
def serve():
  """The shop on a free port of 127.0.0.1: yields its base URL."""
  names = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))
  Shop.photos = {"a": jpeg(names[0]), "b": jpeg(names[1]), "c": jpeg(names[2]),
                  "same_as_a": jpeg(names[0])}
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Shop)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()
    server.server_close()
