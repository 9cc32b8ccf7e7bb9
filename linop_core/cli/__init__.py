"""Command-line entry points (thin wrappers over linop_core)."""
