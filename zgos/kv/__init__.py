"""KV streams on the storage log (storage.md §6): a key-value database replayed, in log order,
from tagged files. ``spec/`` holds the rules."""
