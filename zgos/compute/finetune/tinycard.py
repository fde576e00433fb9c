"""The tiny test model's identity, without torch: its name, licence and the model card whose
storage root is its on-chain id (``zgos.compute.finetune.tiny`` builds the model itself)."""

from __future__ import annotations

from zgos.storage.hasher import build_file_tree_from_bytes

TINY_NAME = "tiny-gemma3-test"
TINY_LICENCE = "Apache-2.0"
# The tiny model is built from code (random weights, fixed seed); what is stored and registered
# for it is this card, so its id is a real storage root its provider can upload.
TINY_MODEL_CARD = (b'{"name":"tiny-gemma3-test","architecture":"Gemma3ForCausalLM","built_by":'
                   b'"zgos.compute.finetune.tiny.build_tiny_model","licence":"Apache-2.0"}\n')
TINY_MODEL_HASH = build_file_tree_from_bytes(TINY_MODEL_CARD).root
