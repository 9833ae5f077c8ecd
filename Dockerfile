# One image for every afluente process (docker-compose.yml):
#   user code  dagster api grpc -m orchestration.definitions -h 0.0.0.0 -p 4000   (the default command)
#   webserver  dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/workspace.yaml
#   daemon     dagster-daemon run -w /opt/dagster/workspace.yaml
#   read API   python -m api
# and the run workers DockerRunLauncher starts from it. Every Python package is installed at the exact
# version of uv.lock (the same lock `make install` uses); `uv sync --locked` refuses a stale lock and
# never resolves versions.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/afluente/.venv \
    PATH=/opt/afluente/.venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/afluente

# Locked dependencies: a layer rebuilt only when the lock changes. uv itself is installed at the
# version the lock records, outside the project environment.
COPY pyproject.toml uv.lock README.md ./
RUN pip install "uv==$(sed -n '/^name = "uv"$/{n;s/^version = "\(.*\)"$/\1/p;}' uv.lock)" \
    && uv sync --locked --no-install-project --compile-bytecode

# The project (editable: the sources, SQL models and YAML files stay where the code expects them).
COPY orchestration ./orchestration
COPY assets ./assets
COPY resources ./resources
COPY io_managers ./io_managers
COPY sensors ./sensors
COPY dbt_like_sql ./dbt_like_sql
COPY generators ./generators
COPY api ./api
COPY services ./services
# The sources are byte-compiled here: PYTHONDONTWRITEBYTECODE keeps processes from writing .pyc at run
# time, so every run container would recompile them otherwise.
RUN uv sync --locked \
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
