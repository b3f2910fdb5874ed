"""The package's version, in a module of its own so that anything (provenance, the
command line, the build) reads it without importing the package's API."""

__version__ = "1.0.0"
