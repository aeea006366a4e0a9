"""The orchestrator: the plan (pure), the scheduler, the item kinds, the run's state and its events.

Modules here import `manifest`, `fetch`, `platform` and `ipc`; nothing below imports the engine.
"""
