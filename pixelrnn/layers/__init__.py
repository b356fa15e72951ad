"""The pieces networks are built from: masked and causal convolutions, shifts, the LSTM
cell and its kernels, conditioning, the shared output head."""
