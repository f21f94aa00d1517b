"""Making the layer from the installed tree: the build transaction, pruning and exclusion, the zip writer."""
