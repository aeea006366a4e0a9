"""The packaging side of the repository: templates, generated files and the build tooling.

A package only so that `pkg.tooling` imports the same way from `pkg/build.py`, the tests and mypy;
none of it is in the wheel that the Mac runs.
"""
