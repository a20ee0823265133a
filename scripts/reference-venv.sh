#!/usr/bin/env bash
# Makes (once) the Python venv that holds the OpenHands reference implementation the tests and the
# benchmark compare Berth with: .cache/openhands-venv, the packages pinned below. Idempotent: a stamp
# records the pins it was made with, so a changed pin rebuilds it. Prints the venv's python path.
# The reference packages need Python >= 3.12 (BERTH_REFERENCE_PYTHON, python3.13, python3.12 or python3
# on PATH, or a pyenv-installed 3.12+).
set -euo pipefail
cd "$(dirname "$0")/.."

OPENHANDS_VERSION=1.58.2
PACKAGES=(
  "openhands-agent-server==$OPENHANDS_VERSION"
  "openhands-sdk==$OPENHANDS_VERSION"
  "openhands-tools==$OPENHANDS_VERSION"
  "openhands-workspace==$OPENHANDS_VERSION"
  "pytest==8.4.2"
)
VENV=.cache/openhands-venv
STAMP="$VENV/.berth-pins"
WANT="${PACKAGES[*]}"

if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  echo "$PWD/$VENV/bin/python"
  exit 0
fi

pick_python() {
  # pyenv's shims answer for versions not selected, so its installed versions are tried by path too.
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  local candidates=("${BERTH_REFERENCE_PYTHON:-}" python3.13 python3.12 python3)
  candidates+=("$pyenv_root"/versions/3.1[2-9]*/bin/python3)
  for c in "${candidates[@]}"; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
PY="$(pick_python)" || { echo "reference-venv: no Python >= 3.12 found (set BERTH_REFERENCE_PYTHON)" >&2; exit 1; }

echo "reference-venv: building $VENV with $("$PY" --version) ($WANT)" >&2
rm -rf "$VENV"
mkdir -p .cache
"$PY" -m venv "$VENV"
# pip warns of every absent local index it is configured with; only other lines are worth showing.
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
echo "$WANT" > "$STAMP"
echo "$PWD/$VENV/bin/python"
