# One image for every afluente process (docker-compose.yml):
#   user code  dagster api grpc -m orchestration.definitions -h 0.0.0.0 -p 4000   (the default command)
#   webserver  dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/workspace.yaml
#   daemon     dagster-daemon run -w /opt/dagster/workspace.yaml
#   read API   python -m api
# and the run workers DockerRunLauncher starts from it. Dependencies are installed at the exact
# versions of requirements.lock (`make lock` pins what the test suite ran against), then the
# project itself without resolving anything again.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/afluente

# Pinned dependencies: a layer rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock && pip check

# The project (editable: the sources, SQL models and YAML files stay where the code expects them).
COPY pyproject.toml README.md ./
COPY orchestration ./orchestration
COPY assets ./assets
COPY resources ./resources
COPY io_managers ./io_managers
COPY sensors ./sensors
COPY dbt_like_sql ./dbt_like_sql
COPY generators ./generators
COPY api ./api
COPY services ./services
# The sources are byte-compiled here (pip compiled the dependencies): PYTHONDONTWRITEBYTECODE keeps
# processes from writing .pyc at run time, so every run container would recompile them otherwise.
RUN pip install --no-deps -e . \
    && python -m compileall -q orchestration assets resources io_managers sensors dbt_like_sql generators api services \
    && python -c "import orchestration.json_logs, api.app"

# Production instance (PostgreSQL storage, queued runs, DockerRunLauncher) and gRPC workspace.
RUN mkdir -p "$DAGSTER_HOME/storage" /opt/afluente/data/landing \
    && cp orchestration/dagster.docker.yaml "$DAGSTER_HOME/dagster.yaml" \
    && cp orchestration/workspace.grpc.yaml /opt/dagster/workspace.yaml \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin afluente \
    && chown -R afluente:afluente /opt/afluente/data /opt/dagster

# Named volumes mounted on these two folders start with this ownership (landing zone and DuckDB
# files; compute logs), in the compose services and in the run containers alike.
USER afluente

ENV AFLUENTE_LANDING_DIR=/opt/afluente/data/landing
EXPOSE 4000 3000 8000

CMD ["dagster", "api", "grpc", "-m", "orchestration.definitions", "-h", "0.0.0.0", "-p", "4000"]
