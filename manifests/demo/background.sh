#!/bin/sh
# A `donotwait` root script: the run goes on while it works; a wait item waits for its result.
set -eu
sleep 1
dir="${BOOTSTRAPPER_ROOT:-/}/Library/Application Support/Demo"
mkdir -p "$dir"
echo "indexed" > "$dir/indexed"
