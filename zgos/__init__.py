"""zgos: an open, runnable decentralized AI operating system in the shape of 0G."""

__version__ = "0.1.0"


def version_text() -> str:
    """What ``zg version`` prints."""
    return f"zgos {__version__}"
