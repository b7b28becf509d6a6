"""Response (and documented request) models: the OpenAPI schema, with an example each."""
