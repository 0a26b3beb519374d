"""`symbackprop serve`: the web page and JSON API (the optional `web` extra: starlette, uvicorn, latex2mathml,
python-multipart).

- app.py: the Starlette application (`create_app(Limits(...))`), its pages, fragments and /api/ endpoints;
- pool.py: the worker processes that run each request under a time limit, with a bounded queue;
- tasks.py: the work itself, through the Python API (runs inside the workers);
- safe.py: MathML and SVG through an allow-list before they are inlined;
- limits.py: the limits and their defaults; templates/ and static/: the page (no CDN, no network).
"""
