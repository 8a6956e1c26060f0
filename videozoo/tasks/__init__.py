"""The tasks: what a user runs on videos. Each is imported on first use (PyAV comes with them)."""
