# The kvstore image: one Raft member per container.
#
# Builds with plain `docker build .` (legacy builder: no BuildKit-only syntax) and with
# the pipeline's `dagger call build`. BASE_IMAGE is pinned by digest; the pipeline passes
# the same reference (ci/src/kvstore_ci/images.py PYTHON), through a mirror when set.
# Any Debian-like image with python3 and its venv module works as a base.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# --- builder: wheels for the store and every dependency, installed into a venv ---------
FROM ${BASE_IMAGE} AS builder
# pip reads PIP_* variables; an offline build points it at a local wheelhouse, e.g.
#   --network=host --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://127.0.0.1:8000/
ARG PIP_NO_INDEX=
ARG PIP_FIND_LINKS=
ARG PIP_INDEX_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first, in their own layer: editing the store's code does not rebuild them.
COPY pyproject.toml constraints.txt ./
RUN python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && python3 -m venv /opt/build \
    && python3 -m venv /opt/kvstore \
    && /opt/build/bin/pip wheel --wheel-dir /wheels --constraint constraints.txt --requirement requirements.txt \
    && /opt/kvstore/bin/pip install --no-index --find-links /wheels --requirement requirements.txt
COPY README.md ./
COPY kvstore/ ./kvstore/
RUN /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels --constraint constraints.txt . \
    && /opt/kvstore/bin/pip install --no-index --no-deps --find-links /wheels kvstore \
    && /opt/kvstore/bin/pip uninstall --yes pip setuptools \
    && /opt/kvstore/bin/python -m compileall -q /opt/kvstore/lib
COPY deploy/image/healthcheck.py /opt/kvstore/bin/kvstore-healthcheck

# --- runtime: the venv only; no compilers, no pip, no build tools ----------------------
FROM ${BASE_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="kvstore" \
      org.opencontainers.image.description="Raft-replicated key-value store with an etcd v3 compatible gRPC API" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# A fixed non-root uid/gid, so volume ownership and Kubernetes securityContext agree.
RUN groupadd --system --gid 10001 kvstore \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kvstore \
        --no-create-home --shell /usr/sbin/nologin kvstore \
    && mkdir -p /var/lib/kvstore \
    && chown 10001:10001 /var/lib/kvstore \
    && chmod 0700 /var/lib/kvstore
COPY --from=builder /opt/kvstore /opt/kvstore

# Read-only root: bytecode is precompiled, nothing is written outside the data volume.
ENV PATH=/opt/kvstore/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KVSTORE_DATA_DIR=/var/lib/kvstore \
    KVSTORE_LISTEN_CLIENT_URLS=http://0.0.0.0:2379 \
    KVSTORE_LISTEN_PEER_URLS=http://0.0.0.0:2380 \
    KVSTORE_LISTEN_METRICS_URLS=http://0.0.0.0:2381
VOLUME ["/var/lib/kvstore"]
WORKDIR /var/lib/kvstore
USER 10001:10001

# client (etcd v3 gRPC + grpc.health.v1), peer (Raft), metrics (/metrics, /healthz, /readyz)
EXPOSE 2379 2380 2381
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["kvstore-healthcheck", "127.0.0.1:2379"]

# Exec form: the store is PID 1 and receives SIGTERM itself (graceful stop, leadership
# transfer) instead of a shell swallowing it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["kvstore"]
CMD ["serve"]
