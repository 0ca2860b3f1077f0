"""Voice activity detection and endpointing: is the caller speaking, and has their turn ended."""
