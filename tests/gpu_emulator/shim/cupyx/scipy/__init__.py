"""Stand-in for ``cupyx.scipy`` (see ``cupyx/__init__.py``)."""
