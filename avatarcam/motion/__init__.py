"""Retargeting: the driver's motion onto the avatar's face."""
