"""What a run keeps in its workdir: checkpoints, the lock, metrics."""
