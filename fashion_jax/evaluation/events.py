"""Reads the scalars of a workdir's TensorBoard event files back, without TensorFlow.

Event files are TFRecord files of `Event` protos: each record is its length (uint64),
a CRC of the length, the bytes, and a CRC of the bytes.
"""

import os
import struct

from fashion_jax.errors import DataError

EVENTS_PREFIX = "events.out.tfevents"


def read_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} in file order, from every event file in `workdir`."""
  from tensorboardX.proto import event_pb2  # tensorboardX writes them; it can read them.
  scalars: dict[str, list[tuple[int, float]]] = {}
  names = sorted(n for n in os.listdir(workdir) if n.startswith(EVENTS_PREFIX))
  for name in names:
    path = os.path.join(workdir, name)
    with open(path, "rb") as f:
      data = f.read()
    offset = 0
    while offset + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[offset:offset + 8])
      record = data[offset + 12:offset + 12 + length]
      if len(record) < length:
        break  # A record still being written by a live run.
      try:
        event = event_pb2.Event.FromString(record)
      except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError.
        raise DataError(f"{path}: unreadable event record at byte {offset}: {e}") from e
      offset += 12 + length + 4
      for value in event.summary.value:
        if value.HasField("simple_value"):
          scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def last_values(scalars: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
  return {tag: points[-1][1] for tag, points in scalars.items() if points}
