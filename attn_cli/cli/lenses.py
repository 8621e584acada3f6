"""`attn heads` and `attn rollout` (being written)."""
