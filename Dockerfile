# Automator image, for both daemons. Build: docker build -t automator .
# Run:   docker run -v $PWD/automator.yaml:/etc/automator/automator.yaml automator
#        (`automator run` by default; `... automator sync` for the synchronizer;
#        Kubernetes manifests for both are in deploy/)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY automator ./automator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# git for GitPython; openssh-client for ssh:// remotes and SSH commit signatures (sync);
# gnupg for OpenPGP commit signatures (sync); kubectl (Kustomize) comes from the wheel.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client gnupg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 automator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
# AUTOMATOR_HEALTH_URL: point it at sync.listen when the container runs `automator sync`
ENV AUTOMATOR_CONFIG=/etc/automator/automator.yaml \
    AUTOMATOR_HEALTH_URL=http://127.0.0.1:8080/healthz \
    XDG_CACHE_HOME=/home/automator/.cache \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import os,urllib.request; urllib.request.urlopen(os.environ['AUTOMATOR_HEALTH_URL'])" || exit 1
ENTRYPOINT ["automator"]
CMD ["run", "--log-format", "json"]
