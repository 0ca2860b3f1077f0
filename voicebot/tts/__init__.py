"""Speech synthesis backends behind one interface, chosen by name in config."""
