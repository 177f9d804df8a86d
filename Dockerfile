# syntax=docker/dockerfile:1
#
# Costwarden daemon image.
#
#   docker build -t costwarden .
#   docker run -d -v costwarden-state:/var/lib/costwarden \
#     -v "$PWD/deploy:/etc/costwarden:ro" -e COSTWARDEN_CONFIG=/etc/costwarden/costwarden.yml costwarden
#
# Two stages: the builder installs the package into a virtualenv at /opt/venv; the runtime
# stage copies only that virtualenv onto a clean python:3.11-slim (no compilers, no sources).
# Both stages use the same base image so the venv's interpreter path matches.

# --- builder ----------------------------------------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the package build needs: metadata, the README it declares, the four packages.
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY tools ./tools
COPY policies ./policies
COPY state ./state

RUN pip install --no-cache-dir ".[postgres]"

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    COSTWARDEN_STATE_DIR=/var/lib/costwarden

RUN groupadd --system --gid 10001 costwarden \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin costwarden \
 && mkdir -p /app /var/lib/costwarden \
 && chown costwarden:costwarden /var/lib/costwarden

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Numeric user so runtimes that enforce runAsNonRoot can verify it.
USER 10001:10001

# The SQLite database (WAL mode) and the LangGraph checkpoints live here.
VOLUME ["/var/lib/costwarden"]

# /healthz, /readyz and /metrics are served on 8080 (http_port).
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; port=os.environ.get('COSTWARDEN_HTTP_PORT','8080'); sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:'+port+'/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["costwarden"]
CMD ["run"]
