# The stocksync API image. docker-compose.yml runs it next to Redis and PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# .dockerignore keeps the virtualenv, caches, tests and any local .env out of the context.
COPY . .
RUN pip install . \
    && useradd --system --create-home --home-dir /var/lib/stocksync --shell /usr/sbin/nologin stocksync

# Run unprivileged, from a directory the service owns (the data dir is relative by default).
USER stocksync
WORKDIR /var/lib/stocksync
ENV STOCKSYNC_DATA_DIR=/var/lib/stocksync/data

EXPOSE 8000
CMD ["stocksync", "serve", "--host", "0.0.0.0", "--port", "8000"]
