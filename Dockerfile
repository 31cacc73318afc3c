# syntax=docker/dockerfile:1
# oai400d's container image: the wheel built from this checkout, installed with the [fleet] extra
# into a venv, on Python's slim image. No compiler, no pip, no cache in the final image.
#
#   docker build -t oai400d:0.1.0 .
#   docker run --rm oai400d:0.1.0 --version
#   docker run --rm -i oai400d:0.1.0 classify - < app.log
#
# Reproducible: with BuildKit, the same commit and base give the same image digest when the
# file times are the commit's:
#   docker buildx build --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#       --output type=image,name=oai400d:0.1.0,rewrite-timestamp=true .
#
# The base is pinned by tag only: no registry could be reached where this file was written to
# read the digest. Pin it for your builds (the digest of the multi-platform index):
#   docker buildx imagetools inspect python:3.11-slim-bookworm
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SOURCE_DATE_EPOCH=0
# No pip cache, no bytecode of the build's own; the wheel's zip entries dated SOURCE_DATE_EPOCH.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
WORKDIR /src
COPY . .
# Every dependency has a binary wheel (Hyperscan, pydantic-core, psycopg[binary]): no compiler.
# The venv's own pip and setuptools go once it is filled; its bytecode is compiled here, checked
# by hash rather than by time (reproducible, and the read-only root file system could not take
# it at run time).
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/oai400d \
 && /opt/oai400d/bin/pip install --no-compile "$(ls /wheels/oai400d-*.whl)[fleet]" \
 && /opt/oai400d/bin/pip uninstall --yes pip setuptools \
 && /opt/oai400d/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        /opt/oai400d/lib \
 && /opt/oai400d/bin/oai400d --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="oai400d" \
      org.opencontainers.image.description="Finds OpenAI API errors in logs and alerts once per problem" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /opt/oai400d /opt/oai400d
# Non-root by default (uid and gid 10001, no login, no home): enough for logs your user can read.
# The Kubernetes DaemonSet runs it as uid 0 with every capability dropped, because the kubelet's
# logs are root's (deploy/kubernetes/daemonset.yaml says why). State and cache: /var/lib/oai400d.
RUN install -d -m 0700 -o 10001 -g 10001 /var/lib/oai400d /var/lib/oai400d/cache \
 && install -d -m 0755 /etc/oai400d
ENV PATH=/opt/oai400d/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OAI400D_CACHE_DIR=/var/lib/oai400d/cache
USER 10001:10001
WORKDIR /var/lib/oai400d
EXPOSE 9400
ENTRYPOINT ["oai400d"]
CMD ["run", "--config", "/etc/oai400d/config.toml"]
