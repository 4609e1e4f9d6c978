"""Images named by http(s) URLs, fetched once into a local content-addressed cache.

Shop exports name their photos by URL. A catalog whose image column holds URLs is read
through `config.datasets.<name>.image_cache=DIR`: each image is downloaded once, checked
(HTTP status, content type, size, a full decode, pixel count) and stored as
`DIR/objects/<sha256 of its bytes>`, with `DIR/urls/<sha256 of the URL>.json` pointing to
it, so the same photo under several URLs is stored once and a re-run fetches only what is
missing. Both files are written aside and moved into place: a stopped download never
leaves a file that looks complete. A URL that cannot be fetched comes back with its reason
(the caller reports it with its row and trains on the rest).

Downloads run in a bounded pool of threads, each with a timeout, a few retries with
exponential back-off for transient failures (timeouts, connection errors, 5xx, 429),
none for permanent ones (4xx, not an image, too large), and a limit on redirects.
"""

import concurrent.futures
import dataclasses
import hashlib
import http.client
import io
import json
import os
import socket
import time
import urllib.error
import urllib.request

from PIL import Image

URL_PREFIXES = ("http://", "https://")
_USER_AGENT = "fashion_jax-image-cache"


def is_url(text: str) -> bool:
  return text.startswith(URL_PREFIXES)


@dataclasses.dataclass(frozen=True)
class FetchOptions:
  workers: int = 8  # Concurrent downloads.
  timeout: float = 10.0  # Seconds for connecting and for each read.
  retries: int = 2  # Further tries after a transient failure.
  backoff: float = 0.5  # Seconds before the first retry; doubled each time.
  max_redirects: int = 5
  max_bytes: int = 20 * 2**20
  max_pixels: int = 40_000_000


class FetchError(Exception):
  """A URL that could not be cached; `transient` ones are worth another try."""

  def __init__(self, reason: str, transient: bool = False):
    super().__init__(reason)
    self.transient = transient


def _url_key(url: str) -> str:
  return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _write_atomically(path: str, data: bytes) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  staging = f"{path}.partial-{os.getpid()}-{id(data)}"
  with open(staging, "wb") as f:
    f.write(data)
  os.replace(staging, path)


def cached_path(cache_dir: str, url: str) -> str | None:
  """The cached file of `url`, or None when it has not been fetched."""
  try:
    with open(os.path.join(cache_dir, "urls", f"{_url_key(url)}.json")) as f:
      entry = json.load(f)
  except (OSError, ValueError):
    return None
  path = os.path.join(cache_dir, "objects", entry.get("sha256", ""))
  return path if os.path.isfile(path) else None


class _LimitedRedirects(urllib.request.HTTPRedirectHandler):

  def __init__(self, limit: int):
    self.max_redirections = limit
    self.max_repeats = limit  # A loop is refused after `limit` hops, like any chain.


def _download(url: str, options: FetchOptions) -> bytes:
  opener = urllib.request.build_opener(_LimitedRedirects(options.max_redirects))
  request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
  try:
    with opener.open(request, timeout=options.timeout) as response:
      kind = response.headers.get_content_type()
      if not kind.startswith("image/"):
        raise FetchError(f"not an image (Content-Type {kind})")
      length = response.headers.get("Content-Length")
      if length and length.isdigit() and int(length) > options.max_bytes:
        raise FetchError(f"too large ({int(length)} bytes > {options.max_bytes})")
      data = response.read(options.max_bytes + 1)
  except urllib.error.HTTPError as e:
    if e.code in (301, 302, 303, 307, 308):
      raise FetchError(f"more than {options.max_redirects} redirects") from e
    transient = e.code >= 500 or e.code == 429
    raise FetchError(f"HTTP {e.code} {e.reason}", transient) from e
  except urllib.error.URLError as e:
    reason = e.reason
    if isinstance(reason, (socket.timeout, TimeoutError)):
      raise FetchError(f"timed out after {options.timeout:g} s", True) from e
    raise FetchError(f"cannot connect ({reason})", True) from e
  except (socket.timeout, TimeoutError) as e:
    raise FetchError(f"timed out after {options.timeout:g} s", True) from e
  except (ConnectionError, http.client.IncompleteRead, http.client.RemoteDisconnected) as e:
    raise FetchError(f"connection broken ({type(e).__name__})", True) from e
  if len(data) > options.max_bytes:
    raise FetchError(f"too large (more than {options.max_bytes} bytes)")
  if length and length.isdigit() and len(data) < int(length):
    raise FetchError(f"truncated ({len(data)} of {length} bytes)", True)
  return data


def _check_image(data: bytes, options: FetchOptions) -> None:
  try:
    with Image.open(io.BytesIO(data)) as image:
      if image.width * image.height > options.max_pixels:
        raise FetchError(f"too many pixels ({image.width}x{image.height} > "
                         f"{options.max_pixels})")
      image.load()  # A full decode: a truncated body fails here.
  except FetchError:
    raise
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise FetchError(f"does not decode as an image ({e})") from e


def fetch(url: str, cache_dir: str, options: FetchOptions = FetchOptions()) -> str:
  """The cached file of `url`, downloading it first if needed; FetchError if it cannot."""
  path = cached_path(cache_dir, url)
  if path is not None:
    return path
  delay = options.backoff
  for attempt in range(options.retries + 1):
    try:
      data = _download(url, options)
      break
    except FetchError as e:
      if not e.transient or attempt == options.retries:
        raise
      time.sleep(delay)
      delay *= 2
  _check_image(data, options)
  digest = hashlib.sha256(data).hexdigest()
  path = os.path.join(cache_dir, "objects", digest)
  if not os.path.isfile(path):
    _write_atomically(path, data)
  entry = {"url": url, "sha256": digest, "bytes": len(data)}
  _write_atomically(os.path.join(cache_dir, "urls", f"{_url_key(url)}.json"),
                    json.dumps(entry).encode("utf-8"))
  return path


def fetch_all(urls, cache_dir: str, options: FetchOptions = FetchOptions(),
              progress: bool = False) -> dict[str, str | FetchError]:
  """{url: its cached file, or the FetchError saying why not}, for every distinct URL;
  at most `options.workers` downloads at a time."""
  distinct = list(dict.fromkeys(urls))
  results = {u: cached_path(cache_dir, u) for u in distinct}
  missing = [u for u, path in results.items() if path is None]
  bar = None
  if progress and missing:
    from tqdm import tqdm
    bar = tqdm(total=len(missing), desc=f"Downloading images into {cache_dir}", unit="image")
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
    futures = {pool.submit(fetch, u, cache_dir, options): u for u in missing}
    for future in concurrent.futures.as_completed(futures):
      try:
        results[futures[future]] = future.result()
      except FetchError as e:
        results[futures[future]] = e
      if bar is not None:
        bar.update()
  if bar is not None:
    bar.close()
  return results
