"""The HTTP layer (FastAPI only): the app factory, routes, body decoding, responses, error
rendering and middleware. It delegates every inference to `service.inference`."""
