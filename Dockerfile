# rsu in a container: slim, non-root, configuration and state in volumes, healthcheck on the API.
#
#   docker build -t rsu .
#   docker run -d --name rsu -v rsu-state:/var/lib/rsu rsu                               # image default config
#   docker run -d --name rsu --network host -v /srv/rsu/etc:/etc/rsu:ro -v rsu-state:/var/lib/rsu rsu
#   docker kill -s HUP rsu      # reload /etc/rsu/rsu.yaml (an invalid file is rejected, the old one stays)
#   docker exec rsu rsu status  # what is on the air
#
# Without a mounted /etc/rsu/rsu.yaml the entrypoint runs config/docker.yaml (API on 127.0.0.1:8301,
# GN over UDP on the container's loopback, local test PKI in /var/lib/rsu). docs/operations.md, "Docker".

# ---- build: the rsu wheel (ASN.1 modules inside it) ------------------------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rsu ./rsu
COPY asn1 ./asn1
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- runtime ---------------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STATE_DIRECTORY=/var/lib/rsu \
    RSU_CACHE_DIR=/var/cache/rsu \
    RSU_HEALTH_URL=http://127.0.0.1:8301/v1/health

RUN useradd --system --user-group --home-dir /var/lib/rsu --no-create-home --shell /usr/sbin/nologin rsu \
 && install -d -o rsu -g rsu -m 0700 /var/lib/rsu /var/cache/rsu \
 && install -d -m 0755 /etc/rsu /usr/local/share/rsu

# uvloop (the "fast" extra) has wheels for amd64 and arm64: no compiler in the image.
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir "$(ls /tmp/wheels/rsu-*.whl)[fast]" && rm -rf /tmp/wheels

COPY config/docker.yaml config/rsu.example.yaml /usr/local/share/rsu/
COPY docker/entrypoint.sh /usr/local/bin/rsu-entrypoint
RUN chmod 0755 /usr/local/bin/rsu-entrypoint

USER rsu
# Fail the build on an invalid default config; compile the ASN.1 modules once so containers start fast.
RUN rsu check-config --no-host-checks /usr/local/share/rsu/docker.yaml \
 && python -c "from rsu.codec.asn1files import compile_set; compile_set('is', 'uper').spec; compile_set('security', 'oer').spec"

VOLUME ["/etc/rsu", "/var/lib/rsu"]
# No EXPOSE: the API listens on loopback only until it has authentication (config/docker.yaml).
# Python, not curl (none in slim images). A mounted config with another api.port: set RSU_HEALTH_URL.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['RSU_HEALTH_URL'], timeout=4)"]
# SIGTERM (docker stop) stops cleanly; SIGHUP (docker kill -s HUP) reloads the configuration.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rsu-entrypoint"]
CMD ["run"]
