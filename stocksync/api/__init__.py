"""The HTTP API: the app factory, dependencies, schemas, problems, middleware and routers."""
