# syncd as a container: `docker build -t syncd .` then
#   docker run -v syncd-data:/data -v ./config:/etc/syncd:ro -e SYNCD_CONFIG=/etc/syncd/syncd.toml syncd
# Without a config it serves the embedded calendar on 127.0.0.1 inside the container only;
# give it a config with real accounts for production. The data directory is private (0700):
# `syncd run` refuses to start when others can read it. compose.yaml runs two replicas on
# PostgreSQL; deploy/syncd.service is the same without containers.
#
# The base image is pinned by digest (the multi-arch index of python:3.11-slim), so a
# rebuild gets the same base until this line changes. To move to the current one:
#   docker buildx imagetools inspect python:3.11-slim   (the "Digest:" line)
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SYNCD_DATA_DIR=/data \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Every dependency from the lock, each checked against its hashes (deploy/README.md says
# how the lock is made); the lock holds setuptools and wheel too, so building syncd itself
# below needs nothing unpinned.
COPY deploy/requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY connectors ./connectors
# A fixed uid, so that secret files mounted from the host can be given to it (chown 10001).
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /data --create-home syncd \
    && chmod 700 /data
USER syncd
VOLUME ["/data"]
# The HTTP listener, when the config sets [http] listen (webhooks, /metrics, /healthz).
EXPOSE 8765
# Asks /healthz when the config sets [http] listen; passes without a listener (the default
# embedded mode listens for nothing to ask), where Docker's view of the process is all.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "syncd.healthcheck"]
# SIGTERM lets the cycles in flight finish their writes before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["syncd"]
CMD ["run"]
