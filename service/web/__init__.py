"""The HTTP edge shared by the blueprints: request parsing, responses, the OpenAPI document and
docs page, request ids and the access log, CORS, health probes, the request limit and
the worker's lifecycle under Hypercorn."""
