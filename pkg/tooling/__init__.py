"""Build and check the macOS package: the payload tree, the package scripts' rehearsal, the committed
generated files, the template filler and the macOS packaging steps.

It lives beside the templates in `pkg/` rather than in `bootstrapper/` because nothing on a Mac runs
it: the wheel that the runtime bundle installs carries only what the daemon, the agent and the
`bootstrapper` command need. Everything here is pure Python and runs on Linux, so `make test` checks
what a Mac build would ship; only `build.build_package` needs macOS tools. It imports the runtime's
`bootstrapper.deploy` (layout, launchd plists, profile) for every label and path.
"""
