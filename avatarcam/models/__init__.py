"""Neural networks as plain torch modules (no training or I/O here)."""
