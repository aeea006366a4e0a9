"""Event sinks: each turns the run's events (`engine.events`) into one display or record.

Every sink treats names, reasons and messages as untrusted (they come from a manifest or a server) and
cleans them with `bootstrapper.text.one_line` before writing them anywhere.
"""
