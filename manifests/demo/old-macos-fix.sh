#!/bin/sh
# Only for macOS before 11: the demo's condition skips it.
echo "patching an old macOS"
