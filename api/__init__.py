"""Read API over the produced warehouse tables (FastAPI): ``python -m api`` or ``create_app()``."""
