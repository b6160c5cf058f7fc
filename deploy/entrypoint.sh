#!/bin/bash
# Entry point of every AEGIS container: web | worker | db | redis | manage ARGS... | health worker | shell.
#
# Runs as root only for what needs it, then drops: secrets are read from /run/secrets (compose
# `secrets:` files) into the environment; in the air-gapped profile (AEGIS_AIRGAP=1) the
# default route that Docker puts even into an `internal: true` network is deleted, so nothing
# in the container has a way out; then the service starts as its own user with an empty
# capability bounding set (setpriv) — except the twin worker, which keeps root with exactly
# NET_ADMIN and SYS_ADMIN inside its container (and a writable /proc/sys) for the twin.
set -euo pipefail
role=${1:-web}
shift || true

secret() {  # secret NAME: the content of /run/secrets/NAME, or empty
  local f=/run/secrets/$1
  if [ -r "$f" ]; then tr -d '\r\n' < "$f"; fi
}

no_way_out() {
  if [ "${AEGIS_AIRGAP:-0}" = 1 ]; then
    # Needs NET_ADMIN (granted by docker-compose.airgap.yml, gone after the privilege drop).
    while ip route show default | grep -q .; do ip route del default; done
    ip -6 route del default >/dev/null 2>&1 || true
    echo "aegis: air-gapped: no default route ($(ip route | tr '\n' ';'))"
  fi
}

as_user() {  # as_user USER CMD...: that user, its groups, no capabilities at all
  local user=$1; shift
  exec setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=-all --bounding-set=-all -- "$@"
}

app_env() {
  local db_password redis_password
  db_password=$(secret db_password)
  redis_password=$(secret redis_password)
  export AEGIS_SECRET_KEY=${AEGIS_SECRET_KEY:-$(secret aegis_secret_key)}
  export AEGIS_KEY_ENCRYPTION_KEY=${AEGIS_KEY_ENCRYPTION_KEY:-$(secret key_encryption_key)}
  export DATABASE_URL=${DATABASE_URL:-postgres://aegis:${db_password}@${AEGIS_DB_HOST:-db}:5432/aegis}
  export REDIS_URL=${REDIS_URL:-redis://:${redis_password}@${AEGIS_REDIS_HOST:-redis}:6379/0}
  export CELERY_BROKER_URL=${CELERY_BROKER_URL:-$REDIS_URL}
}

manage() { python /opt/aegis/app/manage.py "$@"; }

case "$role" in
  web)
    no_way_out
    app_env
    chown aegis:aegis /var/lib/aegis/home /var/lib/aegis/keys /var/lib/aegis/runs
    # Migrations, roles, labs and the site key, as the web's own user (the key file is its, 0600).
    # A failure here stops the container (and compose restarts it): no web on a database that
    # was not migrated.
    setpriv --reuid=aegis --regid=aegis --init-groups --inh-caps=-all --bounding-set=-all -- \
      bash -ec 'python manage.py migrate --noinput -v 0; python manage.py setup_roles >/dev/null
               python manage.py sync_labs >/dev/null
               python manage.py shell -c "from evidence.services import site_key; site_key()"'
    workers=${AEGIS_WEB_WORKERS:-1}
    if [ "$workers" -gt 1 ]; then
      # Several web processes (docs/deploy.md): gunicorn with uvicorn workers; runs go to the
      # Celery twin worker through the broker, events through channels-redis, as with one.
      as_user aegis gunicorn aegis_site.asgi:application --worker-class uvicorn_worker.UvicornWorker \
        --workers "$workers" --bind 0.0.0.0:8088 --keep-alive 30 --no-control-socket \
        --forwarded-allow-ips '*' --access-logfile -
    fi
    as_user aegis daphne -b 0.0.0.0 -p 8088 --proxy-headers aegis_site.asgi:application
    ;;
  worker)
    no_way_out
    app_env
    # Root inside the container: the twin creates namespaces and runs FRR (NET_ADMIN, SYS_ADMIN),
    # and writes each namespace's sysctls, which Docker mounts read-only: remount (SYS_ADMIN).
    mount -o remount,rw /proc/sys
    exec celery -A aegis_site worker --loglevel "${AEGIS_LOG_LEVEL:-INFO}" \
      --concurrency "${AEGIS_WORKER_CONCURRENCY:-1}" --hostname "twin@%h"
    ;;
  db)
    no_way_out
    data=/var/lib/postgresql/data
    mkdir -p "$data" /run/postgresql
    chown postgres:postgres "$data" /run/postgresql
    chmod 700 "$data"
    if [ ! -s "$data/PG_VERSION" ]; then
      pw=$(mktemp); secret db_password > "$pw"; chown postgres "$pw"
      [ -s "$pw" ] || { echo "aegis: the db_password secret is empty" >&2; exit 1; }
      setpriv --reuid=postgres --regid=postgres --init-groups -- \
        /usr/lib/postgresql/15/bin/initdb -D "$data" -U aegis --pwfile="$pw" --auth-local=peer \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
      rm -f "$pw"
      echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
      # The application's database, in single-user mode: no server, no socket, no authentication
      # (local peer authentication would refuse the OS user postgres as the database user aegis).
      echo "CREATE DATABASE aegis;" | setpriv --reuid=postgres --regid=postgres --init-groups -- \
        /usr/lib/postgresql/15/bin/postgres --single -D "$data" postgres >/dev/null
    fi
    as_user postgres /usr/lib/postgresql/15/bin/postgres -D "$data" -c listen_addresses='*'
    ;;
  redis)
    no_way_out
    mkdir -p /data && chown redis:redis /data
    conf=$(mktemp); chmod 600 "$conf"
    printf 'bind 0.0.0.0\nprotected-mode no\ndir /data\nappendonly yes\nrequirepass %s\n' \
      "$(secret redis_password)" > "$conf"
    chown redis "$conf"
    as_user redis redis-server "$conf"
    ;;
  manage)
    app_env
    as_user aegis python /opt/aegis/app/manage.py "$@"
    ;;
  health)
    # Health checks run in a new process (docker exec): the service's environment is rebuilt
    # here from the secrets, as the service's entry point did.
    case "${1:-}" in
      worker)
        app_env
        # Not `| grep -q`: grep leaving early breaks celery's pipe, and pipefail fails the check.
        out=$(celery -A aegis_site inspect ping -d "twin@$HOSTNAME" --timeout 10 2>&1) || true
        grep -q pong <<<"$out" ;;
      *) echo "aegis entrypoint: health worker" >&2; exit 2 ;;
    esac
    ;;
  shell) exec bash "$@" ;;
  *) echo "aegis entrypoint: unknown role '$role' (web | worker | db | redis | manage ARGS | health worker | shell)" >&2; exit 2 ;;
esac
