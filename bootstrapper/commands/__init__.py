"""One thin module per command group: parse options, call the layers below, render.

`cli.py` wires these into one typer app. Nothing outside this package (except `cli.py`) imports it,
and each module imports its heavy dependencies inside the command so `bootstrapper --help` stays fast.
"""
