"""Train HadaNets in PyTorch and convert them into packed model files for the board."""
