"""New identities for avatars: the StyleGAN generator at run time."""
