#!/usr/bin/env bash
# Creates <repo>/.venv with the pinned local tooling (moto, cfn-lint, aws-sam-translator).
# Idempotent and safe to run from parallel test binaries: a flock serialises creation and a
# stamp file (the hash of requirements.txt) marks a finished install.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${FLEXBRIDGE_VENV:-$repo/.venv}"
req="$here/requirements.txt"
stamp="$venv/.flexbridge-requirements"
want="$(sha256sum "$req" | cut -d' ' -f1)"

# A venv's scripts name their interpreter by absolute path: one moved with its checkout (or
# copied) runs none of them, and must be made again.
moved() {
  [[ -f "$venv/bin/pip" ]] && [[ "$(head -n 1 "$venv/bin/pip")" != "#!$venv/bin/python"* ]]
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && ! moved; then
  exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
# Someone else may have finished while we waited for the lock.
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && ! moved; then
  exit 0
fi
# Ours (it has our stamp) but moved: start over. A venv of the caller's own is left as it is.
if [[ -f "$stamp" ]] && moved; then
  echo "flexbridge: $venv was made elsewhere (moved checkout); making it again" >&2
  rm -rf "$venv"
fi

echo "flexbridge: creating $venv with $(tr '\n' ' ' < <(grep -v '^#' "$req"))(first run only, about a minute)" >&2
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
echo "$want" > "$stamp"
echo "flexbridge: $venv ready" >&2
