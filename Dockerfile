# syntax=docker/dockerfile:1
# One image for every tuneforge process (api, worker, beat, migrate); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TUNEFORGE_DATA_DIR=/data

WORKDIR /app

# Only what the package needs: no .venv, .git or local data in the image.
COPY pyproject.toml alembic.ini ./
COPY api ./api
COPY models ./models
COPY worker ./worker
COPY migrations ./migrations

# The [worker] extra (TensorFlow, Keras, KerasTuner) so the same image runs API and workers;
# the GPU worker builds with EXTRAS=worker,gpu to add TensorFlow's CUDA libraries.
ARG EXTRAS=worker
RUN --mount=type=cache,target=/root/.cache/pip pip install ".[${EXTRAS}]"

# Run unprivileged; an empty named volume mounted at /data inherits this ownership.
RUN useradd --create-home --uid 1000 tuneforge \
    && mkdir -p /data \
    && chown tuneforge:tuneforge /data
USER tuneforge

EXPOSE 8000
CMD ["tuneforge", "serve", "--host", "0.0.0.0", "--port", "8000"]
