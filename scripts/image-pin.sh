#!/usr/bin/env bash
# Re-pins image/python-constraints.txt from the wheels of the last amd64 build (run `make image` with an
# empty constraints file first to pick up new releases, then this, then review the diff like code).
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=out/build/amd64/wheels
[ -d "$wheels" ] || { echo "no $wheels: run make image first" >&2; exit 1; }
{
  echo "# Versions of the PyPI packages installed into the image (pip download --constraint): the same tree"
  echo "# builds the same image. Regenerate after a dependency change: scripts/image-pin.sh (see docs/image.md)."
  ls "$wheels"/*.whl | xargs -n1 basename | grep -v '^mamori-' | sed -E 's/^([^-]+)-([^-]+)-.*/\1==\2/' | sort -f
} > image/python-constraints.txt
