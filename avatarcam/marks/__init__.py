"""Disclosure and provenance: the invisible watermark's codec and its payload, and reading it back from files."""
