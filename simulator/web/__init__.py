"""``foliosim serve``: a local web app over the workspace of the command line.

A FastAPI app (:func:`simulator.web.app.create_app`) served by uvicorn: server-rendered pages
(:mod:`simulator.web.pages`) for paper accounts, recommendations, the model registry and run
directories, a JSON API (:mod:`simulator.web.api`) documented by its OpenAPI schema, and a
scheduler (:mod:`simulator.web.scheduler`) that steps accounts marked ``schedule = "weekly"``.

Every asset ships inside the package (plotly.js from the plotly wheel, the page's own script
and style from ``static/``), so the app works offline. Pages are Jinja2 templates with
autoescaping on for every value; no template marks a value safe, and chart data reaches the
page as JSON through ``tojson`` (which escapes ``<``, ``>``, ``&`` and quotes). The security
rules (host check, token, cross-site requests, headers) are in :mod:`simulator.web.security`.
"""
