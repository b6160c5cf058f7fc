"""The perimeter: the bottom layer of AEGIS, below the twin and every Django app.

Django-free and dependency-light on purpose: the twin's remote backend, the LLM client and
the promotion connectors all ask it before a socket opens, so it may import nothing of theirs.
"""
