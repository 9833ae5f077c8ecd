"""``python -m api``: run the read API with uvicorn (``API_HOST``/``API_PORT``)."""

from api.app import main

if __name__ == "__main__":
    main()
