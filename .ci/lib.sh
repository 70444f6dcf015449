# Helpers sourced by .ci scripts: section headers with timings.
# shellcheck shell=bash

_SECTION_NAME=""
_SECTION_START=0

end_section() {
  if [ -n "$_SECTION_NAME" ]; then
    echo "=== done: $_SECTION_NAME ($((SECONDS - _SECTION_START))s)"
    _SECTION_NAME=""
  fi
}

section() {
  end_section
  _SECTION_NAME="$1"
  _SECTION_START=$SECONDS
  echo
  echo "================================================================"
  echo "=== $1   [t+${SECONDS}s]"
  echo "================================================================"
}

# Run a command as root (directly, or via sudo when not root).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    echo "ERROR: need root (or passwordless sudo) to run: $*" >&2
    return 1
  fi
}
