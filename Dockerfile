# syntax=docker/dockerfile:1
#
# Costwarden daemon image.
#
#   docker build -t costwarden .
#   docker run -d -v costwarden-state:/var/lib/costwarden \
#     -v "$PWD/deploy:/etc/costwarden:ro" -e COSTWARDEN_CONFIG=/etc/costwarden/costwarden.yml costwarden
#
# Three stages, ordered so that a code change rebuilds (and pushes) only ~3 MB:
#   deps     the runtime dependencies from requirements/docker.lock, hash-checked, byte-compiled,
#            in the virtualenv /opt/venv; rebuilt only when the lock file changes
#   package  the sources turned into a wheel with the hash-checked build backend from
#            requirements/build.lock, installed into a staging root (/stage) and byte-compiled there
#   runtime  a clean base (no build tools, no sources) with the dependency layer and then the
#            package layer on top
# Regenerate both lock files after changing dependencies in pyproject.toml: deploy/lock.sh
#
# The base is pinned by digest: python:3.11-slim as of CPython 3.11.16 on Debian 13 "trixie" (the
# multi-architecture index; the lock files are resolved for linux/amd64). Every stage uses the same
# base so /opt/venv's interpreter path matches. To move to a newer base, put
# the digest of `docker buildx imagetools inspect python:3.11-slim` in both FROM python lines.

# --- deps: locked third-party packages ------------------------------------------------------------
FROM python:3.11-slim@sha256:1042b61448fef4ba92d16a8c7eb4996d027568ce64792a7877fd88511e0af7c6 AS deps

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

# The venv gets no pip or setuptools of its own (nothing at run time installs packages); the base
# image's pip installs into it with --python.
RUN python -m venv --without-pip /opt/venv

COPY requirements/docker.lock /tmp/docker.lock
# --require-hashes: every file must match the lock; --no-deps: the lock is the whole set, nothing is
# resolved here; --only-binary: no sdist builds (no compilers in a slim image, no unhashed build deps).
# Byte-compiled once, at build: a start then loads .pyc files instead of compiling every module it
# imports (PYTHONDONTWRITEBYTECODE, and the k8s example's read-only root filesystem, mean nothing
# compiled at run time is ever kept; `costwarden run`'s imports take over twice the CPU without them).
# unchecked-hash: the .pyc files stay valid whatever the layer's file times become; the image is
# immutable, so a source can never change under its .pyc.
RUN pip --python /opt/venv/bin/python install --require-hashes --no-deps --only-binary=:all: \
        --no-compile -r /tmp/docker.lock \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        /opt/venv/lib/python3.11/site-packages

# --- package: Costwarden itself -------------------------------------------------------------------
# Built on top of deps for /opt/venv's interpreter; only /stage leaves this stage.
FROM deps AS package

# The build backend (setuptools, wheel), hash-checked too, into the base interpreter of this stage.
COPY requirements/build.lock /tmp/build.lock
RUN pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/build.lock

WORKDIR /src
# Only what the package build needs: metadata, the README it declares, the four code folders.
# .dockerignore keeps agent/demo/ out: the demo estate needs moto, which the image does not carry,
# so `costwarden audit --demo` here answers with a one-line error instead.
COPY pyproject.toml setup.py README.md ./
COPY agent ./agent
COPY tools ./tools
COPY policies ./policies
COPY state ./state

# Installed under /stage (pip --root) so that the runtime stage can add it as its own small layer
# over the unchanged dependency layer; compiled with /stage stripped from the recorded paths, so
# tracebacks point at /opt/venv.
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dist . \
 && pip --python /opt/venv/bin/python install --no-deps --no-compile \
        --no-warn-script-location --root /stage /tmp/dist/costwarden-*.whl \
 && test ! -e /stage/opt/venv/lib/python3.11/site-packages/costwarden/agent/demo \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash -s /stage -p / \
        /stage/opt/venv/lib/python3.11/site-packages/costwarden

# --- runtime --------------------------------------------------------------------------------------
FROM python:3.11-slim@sha256:1042b61448fef4ba92d16a8c7eb4996d027568ce64792a7877fd88511e0af7c6

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

COPY --from=deps /opt/venv /opt/venv
COPY --from=package /stage/ /

# Fail the build, not the first start, if the entry point cannot import.
RUN ["costwarden", "version"]

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
