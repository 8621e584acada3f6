"""`attn stats` and `attn compare` (being written)."""
