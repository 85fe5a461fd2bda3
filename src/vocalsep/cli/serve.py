"""`vocalsep serve -m MODEL_URI -h HOST -p PORT`: the command line of `vocalsep.serving.http` (MLflow's
scoring app for a registered model, behind request limits; docs/serving.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vocalsep.config import DEFAULT_PARAMS, ParamsError, cli_params
from vocalsep.errors import VocalsepError
from vocalsep.serving.http import build_app


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vocalsep serve", add_help=False,
                                     description="Serve a registered model with request limits (docs/serving.md).")
    parser.add_argument("--help", action="help", help="show this message and exit")
    parser.add_argument("-m", "--model-uri", required=True, help="models:/vocalsep@champion, models:/NAME/VERSION, runs:/...")
    parser.add_argument("-h", "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--allow-demo", action="store_true",
                        help="serve a model that learned only from the synthetic demo corpus (refused otherwise)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="params file for the serve section (default: params.yaml; defaults if absent)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import torch
    import uvicorn

    args = parse_args(argv)
    try:
        serve = cli_params(args.params).serve  # a named file that is absent is an error; only params.yaml may be
        torch.set_num_threads(serve.threads)
        app = build_app(args.model_uri, serve, args.allow_demo)
    except (ParamsError, VocalsepError) as err:
        print(f"vocalsep serve: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - MLflow's own load errors: one line, no traceback
        print(f"vocalsep serve: cannot load {args.model_uri} ({str(err).splitlines()[0][:300]}); check the URI "
              "and MLFLOW_TRACKING_URI", file=sys.stderr)
        return 2
    limits = app.limits
    print(f"vocalsep serve: {args.model_uri}, which learned from {app.learned_from}", file=sys.stderr)
    print(f"vocalsep serve: {args.model_uri} on http://{args.host}:{args.port} "
          f"(body <= {limits.max_body_bytes} bytes, <= {limits.max_seconds:g} s of audio, "
          f"{serve.workers} worker(s) x {serve.threads} thread(s), queue {serve.queue}, "
          f"timeout {serve.timeout_seconds:g} s)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
