"""The web UI: server-rendered pages under `/ui`, a little vanilla JavaScript under `/ui/static`.

No front-end build step: Jinja2 templates (autoescaped) and hand-written static files, all served
by the app itself, so `actana server` is the whole install. Everything a sandbox produced is
rendered inert: escaped by Jinja2 on the server, set with `textContent` in the browser, and a
Content-Security-Policy forbids inline script and style. `actana.web.routes.install_web` mounts it.
"""
