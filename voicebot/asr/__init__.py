"""Speech recognition backends behind one interface, chosen by name in config."""
