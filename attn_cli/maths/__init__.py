"""The math, pure NumPy: it imports nothing of attn's and knows nothing of files or terminals."""
