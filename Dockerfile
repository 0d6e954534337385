# symphony: a slim runtime image with the symphony binary, git and bash for hooks.
#   docker build -t symphony .                                  # without the Codex CLI
#   docker build -t symphony --build-arg INSTALL_CODEX=true .   # with @openai/codex from npm
# Inside a container the loopback default of the HTTP server is unreachable from the host:
# publishing the port needs `--bind 0.0.0.0` and, then, `server.auth_token` (symphony refuses
# a non-loopback bind without one). See README.md.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p symphony --bin symphony

FROM debian:bookworm-slim
ARG INSTALL_CODEX=false
ARG CODEX_VERSION=0.169.0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash ca-certificates curl git \
    && if [ "$INSTALL_CODEX" = "true" ]; then \
         apt-get install -y --no-install-recommends nodejs npm \
         && npm install --global "@openai/codex@${CODEX_VERSION}" \
         && npm cache clean --force; \
       fi \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 symphony \
    && useradd --create-home --uid 10001 --gid 10001 --shell /bin/bash symphony \
    && mkdir -p /srv/symphony/workspaces /srv/symphony/logs \
    && chown -R symphony:symphony /srv/symphony
COPY --from=build /src/target/release/symphony /usr/local/bin/symphony
USER 10001:10001
WORKDIR /srv/symphony
VOLUME ["/srv/symphony/workspaces", "/srv/symphony/logs"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/livez"]
ENTRYPOINT ["symphony"]
CMD ["/srv/symphony/WORKFLOW.md", "--port", "8080", "--logs-root", "/srv/symphony/logs"]
