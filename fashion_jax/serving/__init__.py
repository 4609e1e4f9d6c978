"""Serving: exported models, the catalog index, the HTTP service and its web page.

Modules that run without JAX (`outputs`, `artifact`, `onnx_model`, `catalog_index`,
`app`) import nothing from it, so an exported model serves from ONNX Runtime alone.
"""
