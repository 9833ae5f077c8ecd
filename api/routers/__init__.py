"""API routers, one module per domain; ``api.app.ROUTER_MODULES`` lists which are mounted."""
