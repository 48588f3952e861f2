# tracardi-autoscaler image: `docker build -t tracardi-autoscaler:0.1.0 .`
#
# The build stage turns the checkout into a wheel and installs it into /opt/venv; the final
# stage copies only that venv onto the same slim base, so no compiler, pip cache or source tree
# ships. Every dependency has a manylinux wheel, so neither stage needs build tools.
# Pin the base by digest for releases: `docker buildx imagetools inspect python:3.11.14-slim-bookworm`
# prints it; append `@sha256:...` to both FROM lines.
# tests/deploy/test_deploy_image.py runs the same commands in a clean virtualenv.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY autoscaler/ autoscaler/
COPY policies/ policies/

# The shipped policies go into the package so `check`, `simulate` and `explain` find a default
# outside a checkout; --remove-destination also replaces a symlink to the same file. pip
# compiles the bytecode here, so the read-only root filesystem costs no start-up time.
RUN mkdir -p autoscaler/data \
    && cp --remove-destination policies/tracardi.yaml autoscaler/data/tracardi.yaml \
    && pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install /wheels/*.whl

FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="tracardi-autoscaler" \
      org.opencontainers.image.description="Autoscaler and self-healing controller for Tracardi on Kubernetes" \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 autoscaler \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin autoscaler

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
EXPOSE 9108

# Kubernetes probes /healthz and /readyz (deploy/base/deployment.yaml); Docker's HEALTHCHECK is
# ignored by the kubelet, so the image carries none.
# checkov:skip=CKV_DOCKER_2: liveness and readiness are Kubernetes httpGet probes, see above
ENTRYPOINT ["tracardi-autoscaler", "run"]
CMD ["--config", "/etc/tracardi-autoscaler/config.yaml"]
