"""The explorer's panels, one module per network (and one for the chain itself): each is a
FastAPI router under ``/api`` with the pydantic models of its answers."""
