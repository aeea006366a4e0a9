#!/bin/sh
# A user script: run by the agent in the logged-in user's session, as that user.
set -eu
echo "hello from $(id -un) (uid $(id -u)), HOME=$HOME"
mkdir -p "$HOME/Library/Preferences"
echo "welcome=1" > "$HOME/Library/Preferences/com.example.demo.txt"
