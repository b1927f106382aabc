"""condaops."""
