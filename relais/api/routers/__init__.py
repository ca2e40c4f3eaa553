"""One django-ninja Router per resource, mounted on the v1 API in relais.api.api."""
