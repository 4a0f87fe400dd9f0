# The image of the `container` sandbox flavor: Python 3, tini, and the in-sandbox runtime
# (`actana.runtime` + `actana.protocol`, standard library only). No server code, no compiler,
# no setuid or setgid file, and a non-root default user.
#
# Build it with `actana sandbox build-image`, which also makes a base when none can be pulled
# (debootstrap + `docker import`) and sets the labels the server checks at provision time. By
# hand, from a context holding this file, `runtime/actana/{__init__.py,protocol,runtime}` and the
# folders `site/` (Python packages, `pip install --target site ...` with a Python of the image's
# minor version) and `scripts/` (their console scripts, shebang `#!<the image's python3>`):
#   docker build -f sandbox.Dockerfile --build-arg BASE_IMAGE=python:3.11-slim-bookworm \
#     --build-arg ACTANA_VERSION=... --build-arg ACTANA_RUNTIME=<fingerprint> -t actana-sandbox:TAG .
#
# Containers run with a read-only root filesystem, so everything Python would compile or write
# at start-up must already be in the image: the stdlib and the runtime are byte-compiled here.

ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
SHELL ["/bin/sh", "-eu", "-c"]

# Layer 1 does not depend on the runtime, so a runtime change rebuilds only the layers below it.
# tini comes from apt only when the base lacks it (the debootstrap base has it, so that build
# needs no network). The stdlib's .pyc files are made with the image's own interpreter (test
# folders are skipped: slim bases do not ship them, and some hold deliberately bad syntax).
RUN command -v python3 >/dev/null || { echo "the base image has no python3 on PATH" >&2; exit 1; }; \
    if ! command -v tini >/dev/null; then \
        export DEBIAN_FRONTEND=noninteractive; \
        apt-get update -qq; \
        apt-get install -y -qq --no-install-recommends tini >/dev/null; \
    fi; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt \
        /var/log/dpkg.log /usr/share/doc/* /usr/share/man/* /usr/share/info/*; \
    if command -v groupadd >/dev/null && command -v useradd >/dev/null; then \
        groupadd --gid 10001 actana; \
        useradd --uid 10001 --gid 10001 --home-dir /workspace --no-create-home \
            --shell /usr/sbin/nologin actana; \
    else \
        echo 'actana:x:10001:' >>/etc/group; \
        echo 'actana:x:10001:10001:actana sandbox:/workspace:/usr/sbin/nologin' >>/etc/passwd; \
    fi; \
    mkdir -p /workspace /run/actana; \
    chown 10001:10001 /workspace /run/actana; \
    chmod 0755 /workspace /run/actana; \
    python_dirs="$(python3 -I -c 'import os, sysconfig; \
        names = ("stdlib", "platstdlib", "purelib", "platlib"); \
        print(*(d for d in dict.fromkeys(map(sysconfig.get_paths().get, names)) if os.path.isdir(d)))')"; \
    python3 -I -m compileall -q -j 0 -x '/(test|tests|idle_test)/' $python_dirs

# Python packages (the mcp SDK, ...) change less often than the runtime: their layer comes first.
# Like the runtime, they live outside site-packages and reach sys.path through a .pth file.
COPY site/ /opt/actana-site/
COPY scripts/ /usr/local/bin/
RUN chown -R 0:0 /opt/actana-site; \
    chmod -R u=rwX,go=rX /opt/actana-site; \
    python3 -I -m compileall -q -j 0 -x '/(test|tests)/' /opt/actana-site; \
    purelib="$(python3 -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    mkdir -p "$purelib"; \
    echo /opt/actana-site >"$purelib/actana-site.pth"

# The runtime lives outside site-packages so that it is obviously not an installed distribution;
# `-I` ignores PYTHONPATH, so a .pth file in the interpreter's purelib puts it on sys.path.
COPY runtime/ /opt/actana/
RUN chown -R 0:0 /opt/actana; \
    chmod -R u=rwX,go=rX /opt/actana; \
    python3 -I -m compileall -q /opt/actana; \
    purelib="$(python3 -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    mkdir -p "$purelib"; \
    echo /opt/actana >"$purelib/actana-runtime.pth"; \
    python3 -I -B -c 'import actana.runtime.main, actana.protocol.events'; \
    find / -xdev -perm /6000 -exec chmod a-s {} +; \
    leftover="$(find / -xdev -perm /6000)"; \
    if [ -n "$leftover" ]; then echo "setuid/setgid bits left: $leftover" >&2; exit 1; fi

ARG ACTANA_VERSION=unknown
ARG ACTANA_RUNTIME=unknown
ARG ACTANA_PACKAGES=[]
LABEL org.actana.version="${ACTANA_VERSION}" \
      org.actana.runtime="${ACTANA_RUNTIME}" \
      org.actana.packages="${ACTANA_PACKAGES}"

USER 10001:10001
WORKDIR /workspace
ENTRYPOINT ["tini", "--"]
CMD ["python3", "-I", "-m", "actana.runtime.launch"]
