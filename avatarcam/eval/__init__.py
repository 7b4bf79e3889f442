"""Animation quality metrics and visual comparisons, as defined in the shared EVAL.md."""
