"""What the checkpoints of one publisher have in common: where it publishes them, the meta fields its
model zoo states, its evaluation preset and the wrapping of its files (PyTorchVideo/PySlowFast,
torchvision, Hugging Face). Each family's key renaming is in :mod:`videozoo.models.adapters`."""
