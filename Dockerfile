# bids-fixedfx as a BIDS App image.
#
#   docker build -t bids-fixedfx:0.1.0 .
#   docker run --rm -u "$(id -u):$(id -g)" \
#       -v /path/to/bids:/data:ro -v /path/to/derivatives/fixedfx:/out \
#       bids-fixedfx:0.1.0 /data /out participant --participant-label 01 --nprocs 4
#
# The base image is pinned by its full version tag and by digest (the multi-platform image index of
# python:3.11.13-slim-bookworm); BASE_IMAGE exists so that the tests can build the same recipe on a
# locally made stand-in for it where no registry can be reached. Every Python distribution installed
# is pinned, with the hashes of its files, by requirements/image.txt (tools/lock.sh refreshes it
# from setup.cfg). singularity.def starts from the same base and runs the same install commands;
# tests/test_container.py checks that the two agree, and builds this image and runs it.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# ---------------------------------------------------------------------------------------------------
# Stage 1: build the wheel of the package from the build context (see .dockerignore), and put the
# lock beside it.
FROM ${BASE_IMAGE} AS builder

WORKDIR /src
COPY . /src
RUN python -m pip wheel --no-cache-dir --no-deps -w /wheels . \
    && cp requirements/image.txt /wheels/requirements.txt

# ---------------------------------------------------------------------------------------------------
# Stage 2: the runtime image: the wheel, its dependencies and the BIDS validator, at the versions
# and with the hashes of the lock (nothing else is resolved: --no-deps, then pip check); no build
# context, no compiler, no pip cache, and not the test suites that numpy, scipy, pandas and others
# ship inside their packages (130 MB that nothing imports at run time).
FROM ${BASE_IMAGE} AS runtime

# The package's version (bids_fixedfx/__init__.py is the one place it is defined; the build fails
# below if this label disagrees with the installed package).
ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="bids-fixedfx" \
      org.opencontainers.image.description="Task-fMRI statistics for BIDS datasets: run-level GLMs, fixed effects across runs, group tests (a BIDS App on nilearn and pybids)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/bids-fixedfx/bids-fixedfx" \
      org.opencontainers.image.url="https://github.com/bids-fixedfx/bids-fixedfx" \
      org.opencontainers.image.documentation="https://github.com/bids-fixedfx/bids-fixedfx#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="bids-fixedfx" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.13-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1"

# Usable under any UID (docker run -u "$(id -u):$(id -g)"): a world-writable HOME and the BIDS
# validator's Deno cache filled at build time
# (Deno also runs with that directory read-only, as in a Singularity image).
# One thread per process in the BLAS/OpenMP libraries, so that --nprocs alone sets the parallelism.
ENV HOME=/home/bids \
    DENO_DIR=/home/bids/.cache/deno \
    DENO_NO_UPDATE_CHECK=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    NUMEXPR_NUM_THREADS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=builder /wheels /wheels
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r /wheels/requirements.txt \
    && python -m pip install --no-cache-dir --no-deps /wheels/*.whl \
    && python -m pip check \
    && find "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" -type d -name tests -prune -exec rm -rf {} + \
    && rm -rf /wheels \
    && mkdir -p /home/bids/.cache \
    && bids-validator-deno --version \
    && chmod -R a+rwX /home/bids \
    && chmod 1777 /home/bids \
    && test "$(bids-fixedfx --version)" = "bids-fixedfx ${VERSION}"

WORKDIR /home/bids
ENTRYPOINT ["bids-fixedfx"]
