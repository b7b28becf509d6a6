# The carejourney image used by compose.yaml (api, consumers, projections).
# One image, several commands: the service's `command` picks `carejourney serve`,
# `carejourney consume [--adt]` or `carejourney projections run`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY projections ./projections
COPY consumers ./consumers
COPY api ./api
COPY cli ./cli
RUN pip install --no-cache-dir . && mkdir -p /data && chown nobody /data
USER nobody
ENV CAREJOURNEY_DATA_DIR=/data
CMD ["carejourney", "--help"]
