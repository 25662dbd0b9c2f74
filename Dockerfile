# churnwatch for docker-compose.yml: the runtime dependencies only (no embedded
# local stack), talking to the Kafka, Redis and PostgreSQL given by CHURNWATCH_*.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
# The per-event modules are compiled with mypyc (churnwatch/native.py) before the
# project is installed, which carries them along; mypyc type-checks them against the
# installed dependencies, hence the first install. gcc is needed for the build only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install . mypy==2.4.1 \
    && python -m churnwatch.native \
    && pip install --no-deps --force-reinstall . \
    && pip uninstall -y mypy \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* build \
    && useradd --system --uid 10001 --no-create-home churnwatch \
    && mkdir -p /var/lib/churnwatch/recovery \
    && chown -R churnwatch /var/lib/churnwatch

# A fresh named volume mounted on the recovery directory takes this ownership.
USER churnwatch

ENTRYPOINT ["churnwatch"]
CMD ["run"]
