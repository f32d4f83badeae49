#!/usr/bin/env bash
# Bootstrap: install the apt packages Lockdown needs (when root or through sudo), create
# .venv and install the package with its extras. Quick (a few seconds) when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb xauth xdotool xclip xsel openbox wmctrl x11-xserver-utils x11-utils x11-xkb-utils
  dbus-daemon dbus-bin at-spi2-core util-linux
  libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins sox ffmpeg espeak-ng openssl
  libnss3 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxcb-xfixes0 libxcb-sync1
  libxcb-shm0 libxcb-glx0 libxcb-dri3-0 libx11-xcb1 libegl1 libgl1 libgbm1 libasound2
  libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxkbfile1 libfontconfig1
  fonts-dejavu-core libdbus-1-3 libglib2.0-0 libbrotli1
  x11-apps imagemagick
  xserver-xorg-core xserver-xorg-video-dummy
  postgresql
)

say() { printf 'bootstrap: %s\n' "$*" >&2; }

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null \
    | awk '$2 == "installed" {print $1}' || true)
  for p in "${APT_PACKAGES[@]}"; do
    grep -qx "$p" <<<"$installed" || missing+=("$p")
  done
else
  say "no dpkg here: install the equivalents of these packages yourself: ${APT_PACKAGES[*]}"
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"
  else
    say "missing system packages: ${missing[*]}"
    say "run as root or with sudo: apt-get install ${missing[*]}"
    exit 1
  fi
  say "installing ${#missing[@]} system packages: ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    say "Python 3.11 or newer is needed (found $("$PY" --version 2>&1))"; exit 1; }
  if ! "$PY" -m venv .venv 2>/dev/null; then
    say "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1
  fi
  .venv/bin/python -m pip install -q --upgrade pip
fi

# Reinstall only when the project metadata changed since the last install.
if [ ! -f .venv/.bootstrap-stamp ] || [ pyproject.toml -nt .venv/.bootstrap-stamp ]; then
  say "installing lockdown and its extras into .venv"
  .venv/bin/python -m pip install -q -e '.[dev,server]'
  touch .venv/.bootstrap-stamp
fi
