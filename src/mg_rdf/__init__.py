"""mg-rdf: the Movement Graph as linked data."""

__version__ = "0.1.0"
