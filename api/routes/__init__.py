"""One module per resource; ``api.app`` mounts each module's ``router``.

``measures.py`` serves ``/v1/measures`` (evaluators); the browser pages are ``api.pages``.
"""
