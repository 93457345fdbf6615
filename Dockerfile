# milvus-chatops: slim, non-root, installs exactly the lock, runs `milvus-chatops serve`.
FROM python:3.11-slim-bookworm AS tools
# helm and kubectl for the deploy feature, pinned by version and verified against the checksums the
# projects publish next to each release. Set HELM_SHA256 / KUBECTL_SHA256 to pin the digests too
# (recommended for production builds; the build fails when a digest does not match).
ARG HELM_VERSION=v3.17.3
ARG KUBECTL_VERSION=v1.32.4
ARG HELM_SHA256=""
ARG KUBECTL_SHA256=""
ARG TARGETARCH=amd64
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /tmp/tools
RUN set -eu; \
    curl -fsSLO "https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"; \
    curl -fsSLO "https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz.sha256sum"; \
    sha256sum -c "helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz.sha256sum"; \
    if [ -n "$HELM_SHA256" ]; then echo "$HELM_SHA256  helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz" | sha256sum -c -; fi; \
    tar -xzf "helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"; \
    install -m 0755 "linux-${TARGETARCH}/helm" /usr/local/bin/helm; \
    curl -fsSLO "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl"; \
    curl -fsSLO "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl.sha256"; \
    echo "$(cat kubectl.sha256)  kubectl" | sha256sum -c -; \
    if [ -n "$KUBECTL_SHA256" ]; then echo "$KUBECTL_SHA256  kubectl" | sha256sum -c -; fi; \
    install -m 0755 kubectl /usr/local/bin/kubectl

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MILVUS_CHATOPS_DATA_DIR=/var/lib/milvus-chatops \
    PATH=/opt/venv/bin:$PATH
COPY --from=tools /usr/local/bin/helm /usr/local/bin/kubectl /usr/local/bin/
WORKDIR /app
COPY requirements/lock.txt requirements/lock.txt
# Only the runtime half of the lock: test tools (moto, pytest, ruff, mypy) stay out of the image.
COPY requirements/base.in requirements/base.in
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check uv \
 && VIRTUAL_ENV=/opt/venv /opt/venv/bin/uv pip compile requirements/base.in --constraint requirements/lock.txt -o /tmp/runtime.txt --quiet \
 && VIRTUAL_ENV=/opt/venv /opt/venv/bin/uv pip install --no-cache -r /tmp/runtime.txt \
 && /opt/venv/bin/pip uninstall -y uv
COPY pyproject.toml README.md ./
COPY bot bot
COPY commands commands
COPY integrations integrations
COPY templates templates
COPY rules rules
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps -e . \
 && useradd --system --uid 10001 --home-dir /var/lib/milvus-chatops --create-home chatops
USER 10001
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["milvus-chatops"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]
