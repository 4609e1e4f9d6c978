"""Checks an uploaded image before the model sees it, with the HTTP status to answer.

Order matters: the size limit first (no decoding of huge bodies), then the format
and pixel count from the header alone (a decompression bomb is refused before a
single pixel is decoded), then decoding (a truncated or corrupt file is a 400).
"""

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from fashion_jax.data import transforms


class UploadError(ValueError):
  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


def check_size(length: int, max_bytes: int) -> None:
  if length > max_bytes:
    raise UploadError(413, f"upload of {length:,} bytes is over the limit of {max_bytes:,} "
                           "bytes (--max_upload_mb)")


def read_image(data: bytes, image_size: int, max_bytes: int, max_pixels: int) -> np.ndarray:
  """Upload bytes -> uint8 [S, S, 3] as the model expects, or an UploadError."""
  check_size(len(data), max_bytes)
  if not data:
    raise UploadError(400, "empty upload: send an image file in the 'file' field")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(io.BytesIO(data)) as header:  # Reads the header only.
        width, height = header.size
  except UnidentifiedImageError as e:
    raise UploadError(415, "not an image PIL can read (JPEG, PNG, WebP, GIF, BMP, TIFF)") \
        from e
  except Image.DecompressionBombError as e:
    raise UploadError(413, f"image refused as a decompression bomb: {e}") from e
  except (OSError, ValueError, SyntaxError) as e:
    raise UploadError(400, f"unreadable image header: {e}") from e
  if width * height > max_pixels:
    raise UploadError(413, f"image of {width}x{height} = {width * height:,} pixels is over the "
                           f"limit of {max_pixels:,} (--max_pixels)")
  try:
    return transforms.decode_image(data, image_size)
  except transforms.ImageDecodeError as e:
    raise UploadError(400, f"cannot decode the image (truncated or corrupt?): {e}") from e
