# civicbot in a container. Uses the same install script as the README (scripts/install.sh),
# so what runs here is what the tests ran. Build: docker build -t civicbot .
# Run:   docker run -v ./config.toml:/app/config.toml -v ./corpus:/app/corpus \
#                   -v civicbot-index:/app/index -v civicbot-data:/app/data civicbot

FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY civicbot ./civicbot
# Compiles llama-cpp-python once (portable AVX2 build), installs civicbot without the test
# extras, and places the embedded default models.
RUN CIVICBOT_EXTRAS=docker scripts/install.sh

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 civicbot
WORKDIR /app
COPY --from=build --chown=civicbot /app /app
USER civicbot
ENV PATH=/app/.venv/bin:$PATH HF_HUB_OFFLINE=1
VOLUME ["/app/corpus", "/app/index", "/app/data"]
CMD ["civicbot", "start"]
