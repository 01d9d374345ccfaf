"""Django-free core of the storage app: keywords, the G-Counter store, file codecs.

Nothing under this package imports Django or DRF, so it can be used and tested
on its own (a test checks that importing it does not import Django).
"""
