"""The datasets a config may name, how they are loaded and checked, and the batch order."""
