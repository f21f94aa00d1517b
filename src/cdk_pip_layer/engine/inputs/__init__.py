"""Reading what goes into a layer: requirements files and lock files."""
