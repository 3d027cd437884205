#!/usr/bin/env bash
# Install the Debian packages DAMP needs (QGIS 3.22, GDAL bindings, Xvfb) when they are missing.
set -euo pipefail
pkgs=(qgis python3-qgis qgis-providers python3-gdal gdal-bin xvfb python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
