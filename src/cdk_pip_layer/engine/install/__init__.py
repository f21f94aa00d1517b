"""Installing wheels for a Lambda target: the installers and the choice between them, what an index offers,
source distributions, and reading a failed run."""
