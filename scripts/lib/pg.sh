# Shared PostgreSQL helpers for scripts/*.sh (sourced, not run).
#
# pg_find_bin      sets PG_BIN to the directory holding initdb/pg_ctl, installing Debian's
#                  postgresql package when none is found and we are root.
# pg_start DIR PORT  initialises DIR if needed and starts a server on 127.0.0.1:PORT with its
#                  socket in DIR. As root, the server runs as the `postgres` user (PostgreSQL
#                  refuses to run as root).
# pg_stop DIR      stops the server of DIR.
# pg_standby DIR PRIMARY_PORT  makes DIR a streaming standby of the server on 127.0.0.1:PRIMARY_PORT
#                  (pg_basebackup -R: standby.signal and primary_conninfo); pg_start DIR PORT runs it.
# pg_owner DIR     as root, makes sure the `postgres` user exists and gives it DIR and its files.
# pg_free_port     prints a TCP port nothing listens on.

pg_find_bin() {
  local candidate
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr) \
                   "$(command -v pg_ctl 2>/dev/null | xargs -r dirname)"; do
    if [ -n "$candidate" ] && [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
      PG_BIN=$candidate
      return 0
    fi
  done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "PostgreSQL binaries not found: installing Debian's postgresql package" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || return 1
    pg_find_bin
    return $?
  fi
  echo "PostgreSQL binaries (initdb, pg_ctl) not found: install them, e.g. 'apt-get install postgresql'," >&2
  echo "or set POSTMAND_TEST_DATABASE_URL / POSTMAND_DATABASE_URL to an existing server." >&2
  return 1
}

# Runs a command as the user that owns the database files.
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# psql from the server's directory, else from PATH.
pg_psql() {
  if [ -x "$PG_BIN/psql" ]; then "$PG_BIN/psql" "$@"; else psql "$@"; fi
}

pg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The `postgres` user, as root only (PostgreSQL refuses to run as root).
pg_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  fi
}

pg_owner() {
  local dir=$1
  if [ "$(id -u)" = 0 ]; then
    pg_user
    chown -R postgres "$dir"
  fi
}

pg_start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    pg_user
    chown postgres "$dir"
    chmod 700 "$dir"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=500 -c shared_buffers=256MB ${PG_EXTRA_OPTS:-}" >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
}

pg_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

pg_standby() {
  local dir=$1 primary_port=$2
  if [ ! -x "$PG_BIN/pg_basebackup" ]; then
    echo "pg_basebackup not found in $PG_BIN: install the postgresql package's client tools" >&2
    return 1
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    pg_user
    chown postgres "$dir"
    chmod 700 "$dir"
  fi
  pg_as_owner "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$dir/data" \
    -R -X stream -c fast >"$dir/basebackup.log" 2>&1 \
    || { cat "$dir/basebackup.log" >&2; return 1; }
}
