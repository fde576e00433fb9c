"""The storage node: store, log sync, upload cache, JSON-RPC and fast-path HTTP server."""
