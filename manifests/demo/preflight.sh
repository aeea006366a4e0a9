#!/bin/sh
# Preflight: exit 0 means "this Mac is already set up" and ends the bootstrap at once.
# BOOTSTRAPPER_ROOT is "/" on a Mac and the sandbox folder in the demo.
if [ -f "${BOOTSTRAPPER_ROOT:-/}/Library/Application Support/Demo/configured" ]; then
    echo "already configured"
    exit 0
fi
echo "not configured yet: bootstrapping"
exit 1
