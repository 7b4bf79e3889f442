"""StarGAN attribute edits: training data, model, losses and training loop."""
