"""Face tracking: MediaPipe landmarks, head pose, expression signals, filtering."""
