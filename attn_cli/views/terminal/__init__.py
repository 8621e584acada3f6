"""Rich views, one module per command family."""
