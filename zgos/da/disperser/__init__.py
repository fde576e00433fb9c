"""The DA disperser service: ``disperser`` (a request's processing: encode, submit, certify),
``signatures`` (collecting the quorum's signatures), ``state`` (durable requests and blobs),
``servicer`` (0G's ``disperser.Disperser`` gRPC API), ``app`` (the builder ``zg da disperser``
runs)."""
