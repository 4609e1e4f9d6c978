"""Image decoding and augmentation on the host (numpy, uint8).

One decoder serves training, evaluation and prediction, so a model sees the same
preprocessing everywhere.
"""

import io

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

_JPEG_MAGIC = b"\xff\xd8"
_PAD_VALUE = 255  # Product photos are shot on white; pad with white, not black.


class ImageDecodeError(ValueError):
  pass


# Single-channel modes above 8 bits, and what to divide by to reach 0..255.
_HIGH_BIT_DEPTH = {"I;16": 257.0, "I;16B": 257.0, "I;16L": 257.0, "I": 257.0, "F": 1.0}


def _decode_any(data: bytes, size: int | None) -> np.ndarray:
  """Decodes; with `size`, may return a smaller image that is still >= size on each side."""
  if data[:2] == _JPEG_MAGIC:
    try:
      # Let libjpeg-turbo downscale during decoding (DCT scaling): far less work for
      # large photos; the result is still at least `size` on each side.
      kwargs = {"min_height": size, "min_width": size} if size else {}
      return simplejpeg.decode_jpeg(data, colorspace="RGB", **kwargs)
    except ValueError:
      pass  # CMYK or unusual JPEGs: PIL below handles them.
  with Image.open(io.BytesIO(data)) as image:
    if size:
      image.draft("RGB", (size, size))
    if image.mode in _HIGH_BIT_DEPTH:  # 16-bit PNG/TIFF: keep the top 8 bits, not a clip.
      gray = np.asarray(image, np.float32) / _HIGH_BIT_DEPTH[image.mode]
      return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    if image.mode in ("RGBA", "LA", "P"):
      image = image.convert("RGBA")
      background = Image.new("RGBA", image.size, (_PAD_VALUE,) * 4)
      image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"))


def crop_to_box(pixels: np.ndarray, box, margin: float) -> np.ndarray:
  """Crops to box (x1, y1, x2, y2) grown by `margin` x its size on each side, clipped.

  A box that is empty after clipping (bad annotation) leaves the image whole.
  """
  h, w = pixels.shape[:2]
  x1, y1, x2, y2 = (float(v) for v in box)
  dx, dy = margin * (x2 - x1), margin * (y2 - y1)
  left, top = max(0, int(x1 - dx)), max(0, int(y1 - dy))
  right, bottom = min(w, int(round(x2 + dx))), min(h, int(round(y2 + dy)))
  if right <= left or bottom <= top:
    return pixels
  return pixels[top:bottom, left:right]


def decode_image(data: bytes, size: int, box=None, box_margin: float = 0.0) -> np.ndarray:
  """Encoded image -> uint8 [size, size, 3], aspect kept and padded with white.

  Padding instead of cropping keeps the whole product in view (shoes and bags are
  often wide, dresses tall), which the category and colour labels depend on. With a
  `box` (pixel coordinates of the full image) the image is first cropped to it.
  """
  if not data:
    raise ImageDecodeError("empty file")
  try:
    # Box coordinates refer to the full-resolution image: no decode-time downscaling.
    pixels = _decode_any(data, None if box is not None else size)
  except UnidentifiedImageError as e:
    raise ImageDecodeError("not an image format PIL can read, or a corrupt file") from e
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise ImageDecodeError(str(e)) from e
  if box is not None:
    pixels = crop_to_box(pixels, box, box_margin)
  h, w = pixels.shape[:2]
  if (h, w) == (size, size):
    return np.ascontiguousarray(pixels)
  scale = size / max(h, w)
  new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
  resized = np.asarray(Image.fromarray(pixels).resize((new_w, new_h), Image.BILINEAR))
  out = np.full((size, size, 3), _PAD_VALUE, np.uint8)
  top, left = (size - new_h) // 2, (size - new_w) // 2
  out[top:top + new_h, left:left + new_w] = resized
  return out


def read_file(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def central_crop_box(data: bytes, fraction: float) -> tuple[int, int, int, int]:
  """The box of the central `fraction` of an encoded image's width and height."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      w, h = image.size
  except (UnidentifiedImageError, OSError) as e:
    raise ImageDecodeError("not an image format PIL can read, or a corrupt file") from e
  dx, dy = round(w * (1 - fraction) / 2), round(h * (1 - fraction) / 2)
  return dx, dy, w - dx, h - dy


def decoded_batches(items, read, size: int, batch_size: int, crop: float = 1.0):
  """Yields, for each run of `batch_size` items in order, (chunk, images, errors):
  `images[i]` is chunk[i] read (`read(item)` -> bytes) and decoded as `decode_image`
  does (`crop` < 1: its central `crop` of width and height only), or None where that
  failed, and `errors[i]` says why (None where it worked).
  What the tools that run a model over many images (predict, catalog index, search)
  share: one unreadable image is reported by them, never fatal to the rest."""
  for start in range(0, len(items), batch_size):
    chunk = items[start:start + batch_size]
    images, errors = [], []
    for item in chunk:
      try:
        data = read(item)
        box = central_crop_box(data, crop) if crop < 1 else None
        images.append(decode_image(data, size, box=box))
        errors.append(None)
      except (OSError, ValueError) as e:  # ImageDecodeError is a ValueError.
        images.append(None)
        errors.append(e)
    yield chunk, images, errors


def random_flip(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Horizontal flip with probability 1/2 (labels here are all left-right symmetric)."""
  return image[:, ::-1] if rng.random() < 0.5 else image


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, scale, ratio) -> np.ndarray:
  """A random box of `scale` x the area and `ratio` aspect, resized back to the image size.

  Falls back to the whole image when no box fits in 10 tries.
  """
  h, w = image.shape[:2]
  for _ in range(10):
    area = rng.uniform(*scale) * h * w
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
      crop = image[top:top + ch, left:left + cw]
      return np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR))
  return image


def colour_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float,
                  contrast: float, saturation: float, hue: float) -> np.ndarray:
  """Brightness, contrast and saturation scaled by factors in [1 - s, 1 + s]; hue turned
  by up to `hue` of a full turn. A strength of 0 leaves that property alone (hue = 0 and
  saturation = 0 keep colour names true, as a baseColour task needs)."""
  x = image.astype(np.float32)
  if brightness:
    x = x * rng.uniform(1 - brightness, 1 + brightness)
  if contrast:
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
  if saturation:
    gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = gray + (x - gray) * rng.uniform(1 - saturation, 1 + saturation)
  x = np.clip(x, 0, 255).astype(np.uint8)
  if hue:
    hsv = np.asarray(Image.fromarray(x).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(rng.uniform(-hue, hue) * 255)) % 256
    x = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
  return x


def random_erasing(image: np.ndarray, rng: np.random.Generator, probability: float,
                   area) -> np.ndarray:
  """With `probability`, a box of `area` x the image (aspect 1/3..3) filled with noise."""
  if rng.random() >= probability:
    return image
  h, w = image.shape[:2]
  for _ in range(10):
    target = rng.uniform(*area) * h * w
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3)))
    eh, ew = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
    if 0 < eh < h and 0 < ew < w:
      top, left = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
      out = image.copy()
      out[top:top + eh, left:left + ew] = rng.integers(0, 256, (eh, ew, 3), dtype=np.uint8)
      return out
  return image
