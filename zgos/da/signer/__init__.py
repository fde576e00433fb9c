"""The DA signer service: ``signer`` (checks, stores and signs a blob's columns; its gRPC API),
``store`` (the durable cell store), ``app`` (the builder ``zg da signer`` runs)."""
