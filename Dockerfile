# civicbot in a container. Uses the same install script as the README (scripts/install.sh),
# so what runs here is what the tests ran. Build: docker build -t civicbot .
# Run:   docker run -v ./config:/app/config -v ./corpus:/app/corpus \
#                   -v civicbot-index:/app/index -v civicbot-data:/app/data civicbot
# (./config holds config.toml; relative paths in it mean /app/...). With a homeserver:
# docker-compose.example.yml.

FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY civicbot ./civicbot
COPY corpus ./corpus
# Compiles llama-cpp-python once (portable AVX2 build), installs civicbot without the test
# extras, and places the embedded default models.
# (The system packages of scripts/apt-packages.txt go into the runtime stage below.)
RUN CIVICBOT_EXTRAS=docker CIVICBOT_SYSTEM_PACKAGES=0 scripts/install.sh
# The volumes' mount points, owned by the bot's user once copied below. The config lives in
# a folder (a VOLUME cannot be a file); /app/config.toml points into it, so relative paths in
# it keep meaning /app/corpus, /app/index, ... (see config.load).
RUN mkdir -p config index data && ln -s config/config.toml config.toml

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 civicbot
# OCR for scanned pages: the same Debian packages scripts/install.sh installs.
COPY scripts/apt-packages.txt /tmp/apt-packages.txt
RUN apt-get update && grep -v '^#' /tmp/apt-packages.txt | xargs apt-get install -y \
    --no-install-recommends && rm -rf /var/lib/apt/lists/* /tmp/apt-packages.txt
WORKDIR /app
COPY --from=build --chown=civicbot /app /app
USER civicbot
ENV PATH=/app/.venv/bin:$PATH HF_HUB_OFFLINE=1 \
    CIVICBOT_HEALTH_ENABLED=true CIVICBOT_HEALTH_PORT=9464
VOLUME ["/app/config", "/app/corpus", "/app/index", "/app/data"]
# /healthz and /metrics; on 127.0.0.1 unless CIVICBOT_HEALTH_HOST=0.0.0.0 (for a scraper).
EXPOSE 9464
# The first start ingests the corpus and loads the models: give it time before counting.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['CIVICBOT_HEALTH_PORT'] + '/healthz', timeout=8)"]
CMD ["civicbot", "start"]
