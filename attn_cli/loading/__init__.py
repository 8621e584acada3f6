"""Model files → a `Model`: safetensors weights, tokenizers, model folders, the hub cache, the catalog."""
