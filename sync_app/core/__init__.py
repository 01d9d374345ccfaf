"""Django-free core of the sync app: wire formats and the peer client."""
