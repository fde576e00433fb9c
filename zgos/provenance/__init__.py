"""Provenance: the lineage of responses, models and data, walked and verified from chain events.

``zgos.provenance.graph.Provenance(chain, deployment).show(ID)`` returns a tree of ``Node``;
``zg provenance show ID`` prints it and the explorer draws it (``zgos.explorer.panels.provenance``).
"""
