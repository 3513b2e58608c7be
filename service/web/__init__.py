"""The office's page (map, issue panel, sign-in) and the API docs, served by the service itself.

Everything the browser loads comes from `static/` in this package (Leaflet, markercluster,
Swagger UI and ReDoc vendored from the npm registry: `static/vendor/README.md`), so the page
and /docs work on a machine with no internet. The page shell is public; every datum on it
comes from the /v1 API with the key the user pastes in.
"""
