"""The HTTP edge shared by the blueprints: request parsing, responses, the OpenAPI document and
docs page, request ids and the access log, CORS, health probes and the request limit."""
