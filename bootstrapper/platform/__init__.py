"""The OS seam: the `Platform` protocol (base), the real Mac (macos) and a simulated one (sandbox)."""
