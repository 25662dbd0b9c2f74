# churnwatch for docker-compose.yml: the runtime dependencies only (no embedded
# local stack), talking to the Kafka, Redis and PostgreSQL given by CHURNWATCH_*.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home churnwatch \
    && mkdir -p /var/lib/churnwatch/recovery \
    && chown -R churnwatch /var/lib/churnwatch

# A fresh named volume mounted on the recovery directory takes this ownership.
USER churnwatch

ENTRYPOINT ["churnwatch"]
CMD ["run"]
