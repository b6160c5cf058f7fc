#!/bin/sh
# Make the compose stack's secrets, once: random values in files readable by root only.
#   make-secrets.sh [DIR]     (default: the secrets/ folder beside this script)
# Existing files are kept: an upgrade must not change the database password or the key that
# encrypts the approvers' keys. Compose mounts them at /run/secrets/NAME in the containers.
set -eu
dir=${1:-$(dirname "$0")/secrets}
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
for name in aegis_secret_key db_password redis_password key_encryption_key; do
  if [ ! -s "$dir/$name" ]; then
    # 32 random bytes as 64 hex digits: URL-safe (DATABASE_URL) and the KEK format AEGIS reads.
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$dir/$name"
    echo "made $dir/$name"
  fi
done
