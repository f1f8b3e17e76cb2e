"""The operator admin page (``admin.app.register``) and its commands (``admin.cli``).

Kept empty: ``hub.py``'s commands import ``admin.cli`` and ``admin.lockout`` without the
web page (Flask, Authlib, the views), which only ``adapters.web`` loads.
"""
