# One image for training, flows and serving.
#   docker build -t vocalsep .                                   # CPU torch
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t vocalsep:gpu .
#   docker run --rm -v $PWD:/work vocalsep dvc repro             # the pipeline
#   docker run --rm -v $PWD:/work vocalsep vocalsep serve-flows  # scheduled Prefect deployments
#   docker run --rm -p 5001:5001 -v $PWD:/work vocalsep \
#     vocalsep serve -m models:/vocalsep@champion -h 0.0.0.0 -p 5001        # with request limits
#   (or: mlflow models serve -m models:/vocalsep@champion --env-manager local -h 0.0.0.0 -p 5001)
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update && apt-get install -y --no-install-recommends git libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vocalsep
COPY requirements.lock pyproject.toml README.md ./
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
    && pip install uv==0.13.8 && uv pip install --system -r requirements.lock
COPY src ./src
COPY flows ./flows
COPY pretrained ./pretrained
RUN uv pip install --system --no-deps .
# The shipped base model (safetensors + JSON): `--model pretrained`, the fallback without a champion.
ENV VOCALSEP_PRETRAINED=/opt/vocalsep/pretrained

WORKDIR /work
# Every command (dvc, mlflow, prefect, vocalsep) starts with telemetry off: the one list, src/vocalsep/telemetry.env.
ENTRYPOINT ["/bin/sh", "-c", "set -a; . /opt/vocalsep/src/vocalsep/telemetry.env; set +a; exec \"$@\"", "vocalsep"]
CMD ["vocalsep", "--help"]
