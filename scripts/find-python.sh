#!/usr/bin/env bash
# Print the first Python that voicebot supports (3.11 or 3.12: pjsua2-python has no 3.13 wheel yet).
# Ubuntu 22.04's python3 is 3.10: install-system.sh then adds python3.11 from apt.
for p in python3 python3.12 python3.11; do
  if command -v "$p" >/dev/null 2>&1 &&
    "$p" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null; then
    echo "$p"
    exit 0
  fi
done
echo "voicebot needs Python 3.11 or 3.12 (python3 is $(python3 --version 2>&1)); install python3.11 and python3.11-venv" >&2
exit 1
