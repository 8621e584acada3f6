"""What each command computes and keeps: one result type per command, read by every view."""
