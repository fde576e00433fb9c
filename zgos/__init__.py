"""zgos: an open, runnable decentralized AI operating system in the shape of 0G."""

__version__ = "0.1.0"
