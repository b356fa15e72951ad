"""Training: the Trainer and its pure steps, the loop, optimizers, precision, stopping,
the non-finite guard, multi-process runs and progress."""
