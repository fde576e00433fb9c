"""Pure helpers shared by every network: hashing, units, errors. No I/O."""
