"""Build-time generators for shipping bootstrapper: launchd plists, package scripts, the payload tree,
the managed-preferences profile and the Jamf schema, and the macOS packaging steps.

Everything here is pure Python and runs on Linux, so `make test` checks what a Mac build would ship;
only `build.build_package` needs macOS tools. Labels and paths all come from `bootstrapper.paths`.
"""
