"""The catalog audit: a shop's likely wrong labels, its missing labels filled, and its
near-duplicate products (catalog_audit.py; the command is `python -m fashion_jax audit`)."""
