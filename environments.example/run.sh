#!/usr/bin/env bash
# Run `condaops serve` on this example tree, fully offline: the real conda packages in
# ../shared/realdata/channel are served on 127.0.0.1:8765 as the mirrors condaops.yaml
# names. Sets up .venv on first use. Ctrl-C stops both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
channels="$repo/../shared/realdata/channel"
cd "$repo"
if [ ! -x .venv/bin/condaops ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -e .
fi
if [ -d "$channels" ]; then
  python3 -m http.server 8765 --bind 127.0.0.1 --directory "$channels" >/dev/null 2>&1 &
  mirror=$!
  trap 'kill $mirror 2>/dev/null' EXIT
else
  echo "run.sh: $channels not found; builds will use the public channels" >&2
fi
.venv/bin/condaops --config "$here/condaops.yaml" serve
