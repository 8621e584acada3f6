"""Views of the result types: the terminal (Rich), plots and the palette they share."""
