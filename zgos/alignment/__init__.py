"""The alignment network (issue 17): operators' bonds, auditors, and the faults that cost them.

``spec/`` states the rules (challenge sectors, custody statements, compute faults, bonds and
reports), ``contracts.py`` wraps ``AlignmentRegistry`` and holds its part of the deploy plan,
``custody.py`` is the storage node's side of a challenge (sign custody, build the answer).
"""
