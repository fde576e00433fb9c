"""Provenance: the lineage of responses, models and data, walked and verified from chain events.

``Provenance(chain, deployment).show(ID)`` returns a tree of :class:`Node` (see
:mod:`zgos.provenance.graph`); ``zg provenance show ID`` prints it.
"""

from zgos.provenance.graph import Check, Node, Provenance, ProvenanceError

__all__ = ["Check", "Node", "Provenance", "ProvenanceError"]
