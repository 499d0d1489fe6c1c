"""Training: the one loop (`loop.fit`), checkpoints, and each task's specifics."""
