# The control-plane image used by the Helm chart (web, worker, beat, migrations, orchestrator).
# Not built in this repository's CI: the build machines have no Docker engine.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app/platform:/app \
    IRONBOWL_ENV=production \
    DATA_DIR=/var/lib/ironbowl

RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 ironbowl \
    && useradd --uid 10001 --gid ironbowl --home-dir /app --no-create-home ironbowl

WORKDIR /app
COPY pyproject.toml constraints.txt README.md manage.py ./
COPY platform ./platform
COPY tenants ./tenants
COPY scheduling ./scheduling
COPY locale ./locale
RUN pip install --no-cache-dir -c constraints.txt . \
    && python manage.py compilemessages --ignore=.venv -v 0

USER 10001
EXPOSE 8000
CMD ["gunicorn", "ironbowl.asgi:application", "-c", "/app/platform/ironbowl/gunicorn_conf.py", "--bind", "0.0.0.0:8000"]
