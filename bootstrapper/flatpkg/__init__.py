"""Read and write macOS flat packages (xar): facts, payloads, safe extraction."""
