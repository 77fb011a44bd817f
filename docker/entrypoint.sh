#!/bin/sh
# Container entry point: check the config, migrate the database, then run `inbox <command>`.
# The config file comes from $INBOX_CONFIG (mounted read-only); secrets come from the environment.
set -eu

config="${INBOX_CONFIG:-/config/inbox.toml}"
inbox_bin="${INBOX_BIN:-inbox}"

if [ ! -f "$config" ]; then
  echo "saluran: no config file at $config (mount one, or set INBOX_CONFIG)" >&2
  exit 2
fi

"$inbox_bin" -c "$config" check-config

case "${1:-run}" in
  run)
    # Every worker runs the upgrade: it takes a database lock, so only one applies it.
    "$inbox_bin" -c "$config" db upgrade
    if [ "$#" -gt 0 ]; then shift; fi
    exec "$inbox_bin" -c "$config" run "$@"
    ;;
  *)
    exec "$inbox_bin" -c "$config" "$@"
    ;;
esac
