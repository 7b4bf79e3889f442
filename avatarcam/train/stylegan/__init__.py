"""StyleGAN identities: training, evaluation against a DCGAN baseline, and export."""
