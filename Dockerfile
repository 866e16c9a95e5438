# The platform itself as an image. It drives the engine whose socket is mounted at /var/run/docker.sock
# and probes bot containers over the bridge network, so run it on the same engine (see README).
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
# the standard profile templates are built into the package (FLEET_TEMPLATES_DIR's default)
COPY templates ./templates
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
# iptables: the platform keeps bots off the host with firewall chains of its own (run with --cap-add NET_ADMIN)
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    WOPR_DATA_DIR=/var/lib/wopr-platform \
    PORT=3100
RUN mkdir -p /var/lib/wopr-platform
EXPOSE 3100
ENTRYPOINT ["wopr-platform"]
CMD ["serve"]
