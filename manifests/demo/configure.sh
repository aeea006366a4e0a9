#!/bin/sh
# A root script: configure the machine.
set -eu
dir="${BOOTSTRAPPER_ROOT:-/}/Library/Application Support/Demo"
mkdir -p "$dir"
date -u +%Y-%m-%dT%H:%M:%SZ > "$dir/configured"
echo "configured $dir"
