#!/usr/bin/env bash
# Install the Debian/Ubuntu packages voicebot needs, only those that are missing.
# Used by `make install` (and so by `make run` and `make test`).
set -euo pipefail
pkgs=(python3 python3-venv sip-tester baresip kamailio kamailio-extra-modules kamailio-tls-modules tshark espeak-ng sox postgresql nftables graphviz systemd chromium chromium-driver)
# voicebot runs on Python 3.11 or 3.12; where python3 is older (Ubuntu 22.04: 3.10), add python3.11.
if ! bash "$(dirname "$0")/find-python.sh" >/dev/null 2>&1; then
  pkgs+=(python3.11 python3.11-venv)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
