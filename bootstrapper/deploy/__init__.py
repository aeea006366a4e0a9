"""What the installed bootstrapper needs to know about its own deployment: the layout of the package
on disk, the launchd plists it loads, and the managed-preferences profile `deploy profile` prints.

Labels and paths all come from `bootstrapper.paths`. The tooling that builds and checks the package
is in the checkout's `pkg/tooling/` and is not shipped.
"""
