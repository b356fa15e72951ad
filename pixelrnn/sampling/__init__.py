"""Drawing samples and completions, and writing them as pictures."""
