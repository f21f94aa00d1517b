"""The layer store: built layers kept by input hash, so that an unchanged input needs no build. Used by the CDK
adapter and the command line alike."""
