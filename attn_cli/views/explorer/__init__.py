"""`attn explore`: the Textual app (app.py, widgets.py), its rows (lines.py) and its keys (state.py)."""
