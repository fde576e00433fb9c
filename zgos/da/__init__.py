"""Data availability: erasure-coded blobs with KZG cell proofs, BLS quorum certificates."""
