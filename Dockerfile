# Automator image, for both daemons (`automator run`, `automator sync`).
#
# Build: docker build -t automator .
#        BASE (default python:3.11-slim) is any Debian-based image with Python 3.11 and
#        `python3 -m venv`; tests/integration/test_container.py builds with
#        --build-arg BASE=<a local Debian bookworm image from hack/container-base.sh>, since
#        the test machines cannot pull images.
# Run:   docker run -v $PWD/automator.yaml:/etc/automator/automator.yaml automator
#        (`automator run` by default; `... automator sync` for the synchronizer;
#        Kubernetes manifests for both are in deploy/)
#
# The package lives in a virtualenv (/opt/automator): Debian's own python3 refuses
# `pip install` into the system interpreter (PEP 668), and the same layout works on both
# bases. tini is PID 1 so SIGTERM reaches the daemon (which then stops cleanly) and the
# git/ssh/gpg children it spawns are reaped. The process runs as uid 10001, never root.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# Optional, for the build only: a private package index, or a CA bundle in the base for pip
# to trust when a TLS-inspecting proxy sits between the build and PyPI.
ARG PIP_INDEX_URL
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/automator/bin:$PATH
RUN python3 -m venv /opt/automator
WORKDIR /src
# Dependencies first, from pyproject.toml alone (a stub package stands in for the code),
# so a code change rebuilds only the last, small layer.
COPY pyproject.toml ./
RUN mkdir automator && touch README.md automator/__init__.py \
 && pip install . && pip uninstall --yes automator && rm -rf README.md automator build *.egg-info
COPY . ./
RUN pip install --no-deps .

FROM ${BASE}
# git for GitPython; openssh-client for ssh:// remotes and SSH commit signatures;
# gnupg for OpenPGP commit signatures; tini as PID 1. kubectl (Kustomize) is in the venv.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git openssh-client gnupg ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group automator
# Metadata before the code, so a rebuild after a code change redoes only the last layer.
USER 10001
# AUTOMATOR_HEALTH_URL: point it at sync.listen when the container runs `automator sync`
ENV PATH=/opt/automator/bin:$PATH \
    AUTOMATOR_CONFIG=/etc/automator/automator.yaml \
    AUTOMATOR_HEALTH_URL=http://127.0.0.1:8080/healthz \
    HOME=/home/automator \
    XDG_CACHE_HOME=/home/automator/.cache \
    PYTHONUNBUFFERED=1
WORKDIR /home/automator
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import os,urllib.request; urllib.request.urlopen(os.environ['AUTOMATOR_HEALTH_URL'])" || exit 1
ENTRYPOINT ["tini", "--", "automator"]
CMD ["run", "--log-format", "json"]
# The venv stays root-owned: uid 10001 can run it, not change it.
COPY --from=build /opt/automator /opt/automator
