"""Pure rules of the alignment network; ``AlignmentRegistry`` implements them on chain."""
