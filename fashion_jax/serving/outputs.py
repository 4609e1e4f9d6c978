"""What a model's output per task means once served, and its JSON form.

A task kind declares one of a few output forms (`TaskKind.served_output`):

  classes     probabilities over `classes` (one label per image)
  attributes  independent scores per class, each with its decision `thresholds`
  embedding   a unit-norm vector of `dim` values
  value       one number

Everything past the model (predict's JSON lines, the exported metadata, the catalog
index's filters, the HTTP service) reads these forms and not the task kinds, so it
needs no JAX and a new task kind serves by naming its form. Pure numpy.
"""

from typing import Any

import numpy as np

FORMS = ("classes", "attributes", "embedding", "value")


def fields(spec: dict, output: np.ndarray, top_k: int, with_embedding: bool) -> dict[str, Any]:
  """One image's output of one task as {section: value} (predict's JSON line holds
  `line[section][task] = value`): the top-k classes, the attributes above threshold,
  the embedding when asked for, or the value."""
  form = spec["form"]
  if form == "classes":
    order = np.argsort(-output, kind="stable")[:top_k]
    return {"predictions": [{"label": spec["classes"][c], "probability": round(float(output[c]), 6)}
                            for c in order]}
  if form == "attributes":
    order = np.argsort(-output, kind="stable")
    above = output >= np.asarray(spec["thresholds"], np.float32)
    return {"predictions": [{"label": spec["classes"][c], "score": round(float(output[c]), 6)}
                            for c in order if above[c]]}
  if form == "embedding":
    return {"embeddings": [round(float(v), 6) for v in output]} if with_embedding else {}
  if form == "value":
    return {"predictions": {"value": round(float(output), 6)}}
  raise ValueError(f"unknown output form {form!r}; expected one of {FORMS}")

