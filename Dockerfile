# rsu in a container: slim, non-root. (Issue 7 adds the config/state volumes and the API healthcheck.)
FROM python:3.11-slim

RUN useradd --system --home-dir /var/lib/rsu --create-home --shell /usr/sbin/nologin rsu
WORKDIR /opt/rsu
COPY pyproject.toml README.md ./
COPY rsu ./rsu
COPY asn1 ./asn1
RUN pip install --no-cache-dir . && rm -rf /opt/rsu/build

USER rsu
ENV RSU_CACHE_DIR=/var/lib/rsu/cache
# Compile the ASN.1 modules once at build time so the container starts fast.
RUN python -c "from rsu.codec.facilities import get_codec; get_codec()"
ENTRYPOINT ["rsu"]
CMD ["run"]
