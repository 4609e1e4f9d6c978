"""Serving: exported models, the catalog index, the HTTP service and its web page.

Modules that run without JAX (`outputs`, `artifact`, `models` for export folders,
`catalog_index`, `index_build` for image folders, `label_search`, `uploads`, `app`)
import nothing from it, so an exported model serves from ONNX Runtime alone.
"""
