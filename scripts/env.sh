#!/usr/bin/env bash
# Run a command in the project's environment, making it first if needed: `.venv` (or
# $THTL_VENV) from Python 3.11, filled from the pinned requirements (torch once for every
# command) and this package (editable). A stamp of the requirements decides whether anything is
# installed: a second run installs nothing. Usage: bash scripts/env.sh nox -s tests
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${THTL_VENV:-$root/.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
req="$root/requirements"
want="$(cat "$req/torch.txt" "$req/base.txt" "$req/dev.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.thtl-requirements"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || { echo "scripts/env.sh: needs Python 3.11 (found $("$python" --version 2>&1)); set PYTHON=..." >&2; exit 2; }
  echo "scripts/env.sh: creating $venv" >&2
  "$python" -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  echo "scripts/env.sh: installing the pinned requirements into $venv" >&2
  pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
  "${pip[@]}" -r "$req/torch.txt"   # exact pins: pip takes them from the local wheel cache
  "${pip[@]}" -r "$req/base.txt" -r "$req/dev.txt"
  "${pip[@]}" --no-deps -e "$root"
  echo "$want" > "$stamp"
fi
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
cd "$root"
exec "$@"
