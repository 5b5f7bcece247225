# syncd as a container: `docker build -t syncd .` then
#   docker run -v syncd-data:/data -v ./config:/etc/syncd:ro -e SYNCD_CONFIG=/etc/syncd/syncd.toml syncd
# Without a config it serves the embedded calendar on 127.0.0.1 inside the container only;
# give it a config with real accounts for production. The data directory is private (0700):
# `syncd run` refuses to start when others can read it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SYNCD_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY connectors ./connectors
RUN pip install --no-cache-dir ".[postgres]" \
    && useradd --system --home-dir /data --create-home syncd \
    && chmod 700 /data
USER syncd
VOLUME ["/data"]
# SIGTERM lets the cycles in flight finish their writes before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["syncd"]
CMD ["run"]
