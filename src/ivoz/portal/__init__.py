"""The portal: the REST API of the four levels (platform, brand, client, user).

``app.create_app`` builds the ASGI application, ``role.serve`` runs it; docs/api.md
describes the API for its users.
"""
