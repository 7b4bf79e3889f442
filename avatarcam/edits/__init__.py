"""Attribute edits of the avatar (StarGAN) at run time."""
