#!/usr/bin/env bash
# Run `condaops serve` on this example tree, fully offline: the real conda packages in
# ../shared/realdata/channel are served on 127.0.0.1 as the mirrors condaops.yaml names.
# Sets up .venv on first use. Ctrl-C stops both.
#
# Fails loudly: a taken port is named and another free one is used (the mirror's port goes
# to condaops through CONDAOPS_CHANNELS__MIRRORS, the site's through CONDAOPS_WEB__LISTEN);
# the mirror must answer before condaops starts (its log is shown if it does not); the
# site's URL is printed once it answers. Ports: MIRROR_PORT (default 8765), WEB_PORT
# (default 8080).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
channels="$repo/../shared/realdata/channel"
cd "$repo"

say() { echo "run.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# A free port: the wanted one if nothing listens there, else one the system picks.
free_port() {  # free_port WANTED WHAT
  python3 - "$1" "$2" <<'EOF'
import socket, sys
wanted, what = int(sys.argv[1]), sys.argv[2]
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", wanted))
        print(wanted)
        sys.exit(0)
    except OSError as exc:
        reason = exc.strerror
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
print(f"run.sh: port {wanted} for the {what} is taken ({reason}); using {port}", file=sys.stderr)
print(port)
EOF
}

# Wait until URL answers 200, at most SECONDS; 1 (saying what it got) if it never does.
wait_for() {  # wait_for URL SECONDS [PID: give up when it exits]
  python3 - "$@" <<'EOF'
import sys, time, urllib.error, urllib.request
url, limit = sys.argv[1], float(sys.argv[2])
pid = int(sys.argv[3]) if len(sys.argv) > 3 else None
deadline = time.monotonic() + limit
got = "no answer"
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            sys.exit(0)
    except urllib.error.HTTPError as exc:
        got = f"HTTP {exc.code}"
        if exc.code < 500:
            break
    except OSError as exc:
        got = f"no answer ({exc})"
    if pid is not None:  # gone, or a zombie waiting for this script's `wait`
        try:
            with open(f"/proc/{pid}/stat") as stat:
                gone = stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            gone = True
        if gone:
            got = "the process serving it exited"
            break
    time.sleep(0.2)
print(f"run.sh: {url}: {got}", file=sys.stderr)
sys.exit(1)
EOF
}

if [ ! -x .venv/bin/condaops ]; then
  say "first run: creating .venv and installing condaops into it (about a minute; pip shows its progress)"
  python3 -m venv .venv
  .venv/bin/pip install --progress-bar on -e . || die "installing condaops into .venv failed (see pip's output above)"
fi

mirror=""
web=""
cleanup() {
  [ -n "$web" ] && kill "$web" 2>/dev/null && wait "$web" 2>/dev/null
  [ -n "$mirror" ] && kill "$mirror" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -d "$channels" ]; then
  mirror_port="$(free_port "${MIRROR_PORT:-8765}" "channel mirror")"
  mkdir -p "$here/.condaops"
  mirror_log="$here/.condaops/mirror.log"
  python3 -m http.server "$mirror_port" --bind 127.0.0.1 --directory "$channels" >"$mirror_log" 2>&1 &
  mirror=$!
  probe="http://127.0.0.1:$mirror_port/conda-forge-py312-deps/noarch/repodata.json"
  if ! wait_for "$probe" 15 "$mirror"; then
    say "the channel mirror on 127.0.0.1:$mirror_port does not serve $probe: is $channels complete? its log:"
    cat "$mirror_log" >&2
    exit 1
  fi
  say "channel mirror: http://127.0.0.1:$mirror_port/ serving $channels (log: $mirror_log)"
  export CONDAOPS_CHANNELS__MIRRORS="{https://conda.anaconda.org/conda-forge: [http://127.0.0.1:$mirror_port/conda-forge-py312-deps], https://repo.anaconda.com/pkgs/main: [http://127.0.0.1:$mirror_port/defaults-2021-py27-flask]}"
else
  say "$channels not found; builds will use the public channels"
fi

web_port="$(free_port "${WEB_PORT:-8080}" "status site")"
export CONDAOPS_WEB__LISTEN="127.0.0.1:$web_port"
say "starting condaops serve; builds log their progress below (first builds download and install packages)"
.venv/bin/condaops --config "$here/condaops.yaml" serve &
web=$!
if wait_for "http://127.0.0.1:$web_port/healthz" 120 "$web"; then
  say "ready: the status site is at http://127.0.0.1:$web_port/ (Ctrl-C stops)"
else
  say "condaops serve did not answer on 127.0.0.1:$web_port (see its messages above)"
  exit 1
fi
set +e
wait "$web"
status=$?
web=""
exit "$status"
