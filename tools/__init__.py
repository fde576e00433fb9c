"""Developer tools run by the Makefile (``make lint``); not part of the zgos package."""
