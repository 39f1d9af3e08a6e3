#!/bin/sh
# rsu container entrypoint.
#   (no arguments) or `run`  -> rsu run --config /etc/rsu/rsu.yaml when that file is mounted, else
#                               rsu run --config /usr/local/share/rsu/docker.yaml (the image default)
#   anything else            -> rsu ARGS...   (e.g. `check-config /etc/rsu/rsu.yaml`, `status`)
# RSU_CONFIG / RSU_DEFAULT_CONFIG override the two paths.
set -eu
config="${RSU_CONFIG:-/etc/rsu/rsu.yaml}"
default="${RSU_DEFAULT_CONFIG:-/usr/local/share/rsu/docker.yaml}"
if [ "$#" -eq 0 ] || { [ "$#" -eq 1 ] && [ "$1" = run ]; }; then
    if [ -f "$config" ]; then
        set -- run --config "$config"
    else
        echo "rsu: no $config mounted; running the image's default configuration $default" >&2
        set -- run --config "$default"
    fi
fi
exec rsu "$@"
