#!/usr/bin/env bash
# `make package`: build the one-folder bundle dist/lockdown from this tree with
# packaging/lockdown.spec, check that it is there, and print its size and build time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
start=$(date +%s)
rm -rf build/pyinstaller dist/lockdown
"$PY" -m PyInstaller --noconfirm --clean --log-level "${PYINSTALLER_LOG_LEVEL:-WARN}" \
  --workpath build/pyinstaller --distpath dist packaging/lockdown.spec
for part in lockdown lockdown-display-helper build-info.json _internal/PySide6/Qt/libexec/QtWebEngineProcess \
  _internal/lockdown/resources/js/guard.js; do
  [ -e "dist/lockdown/$part" ] || { echo "package: dist/lockdown/$part is missing" >&2; exit 1; }
done
rm -rf build/pyinstaller
echo "package: dist/lockdown, $(du -sh dist/lockdown | cut -f1), built in $(( $(date +%s) - start )) s"
