"""The storage indexer: node discovery, file locations, upload node selection, REST gateway."""
