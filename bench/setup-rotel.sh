#!/usr/bin/env bash
# Installs the peer used for comparison, rotel (PyPI package `rotel`, which
# ships the rotel-agent binary), into a venv under ~/.cache, and prints the
# path of a runnable rotel-agent.
#
# The 0.0.1a10 wheel is tagged manylinux_2_34 but its binary imports two
# GLIBC_2.38 symbols (__isoc23_sscanf, __isoc23_strtol); on glibc < 2.38
# (Debian 12 has 2.36) bench/rotel_glibc_compat.py writes a copy that uses
# the classic sscanf/strtol instead. Nothing else in the binary changes.
#
#   ROTEL_VERSION  (default 0.0.1a10)
#   ROTEL_VENV     (default ~/.cache/ccotel-bench-rotel)
set -euo pipefail
version="${ROTEL_VERSION:-0.0.1a10}"
venv="${ROTEL_VENV:-$HOME/.cache/ccotel-bench-rotel}"
here="$(cd "$(dirname "$0")" && pwd)"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "import rotel, elftools" 2>/dev/null \
   || [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("rotel"))')" != "$version" ]; then
  "$venv/bin/pip" install -q "rotel==$version" pyelftools >&2
fi
pkg="$("$venv/bin/python" -c 'import rotel, os; print(os.path.dirname(rotel.__file__))')"
agent="$pkg/rotel-agent"
if "$agent" --version >/dev/null 2>&1; then
  echo "$agent"
  exit 0
fi
patched="$venv/rotel-agent"
if [ ! -x "$patched" ] || [ "$patched" -ot "$agent" ]; then
  "$venv/bin/python" "$here/rotel_glibc_compat.py" "$agent" "$patched" >&2
  chmod +x "$patched"
fi
"$patched" --version >/dev/null
echo "$patched"
