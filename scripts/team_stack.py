"""Start the team setup locally: PostgreSQL + S3 (moto) + ``mlflow server --workers N``.

The same helpers the tests use (``tests/servers.py``), so what you try by hand is what CI
checks. Everything binds to 127.0.0.1, lives in a temp directory and stops on Ctrl-C::

    make team-stack                      # or: .venv/bin/python scripts/team_stack.py --workers 4
    .venv/bin/python scripts/team_stack.py --instances 3 --workers 2   # scale-out shape

Then point a handler at the printed ``tracking_uri``. With ``--instances N`` there are N
``mlflow server`` instances on consecutive ports over the same database and bucket (they
keep no state of their own): spread writers over the printed URIs, one per app replica or
behind any HTTP load balancer (docs/guide/throughput.md). Needs Debian's ``postgresql`` and the
dev extra (``moto[server]``, ``boto3``, ``psycopg``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import MlflowServer, S3Server, start_postgres


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="mlflow server --workers")
    parser.add_argument("--port", type=int, default=5000, help="mlflow server port")
    parser.add_argument("--bucket", default="mlflow-artifacts")
    parser.add_argument("--instances", type=int, default=1,
                        help="mlflow server instances over the same database and bucket")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    if not 1 <= args.instances <= 16:
        parser.error("--instances must be between 1 and 16")
    # Ctrl-C, or a plain `kill` (SIGTERM), stops the three servers through the finally below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="ca-team-stack-"))
    cluster = start_postgres()
    s3 = S3Server(args.bucket, root)
    servers: list[MlflowServer] = []
    try:
        backend = cluster.create_database(f"mlflow_{uuid.uuid4().hex[:6]}")
        s3.start()
        for i in range(args.instances):
            server = MlflowServer(backend, root / f"artifacts-{i}", args.port + i,
                                  artifacts_destination=f"s3://{args.bucket}", env=s3.env,
                                  workers=args.workers)
            servers.append(server)
            server.start()
        urls = ", ".join(f'"{s.url}"' for s in servers)
        print(f"PostgreSQL: {backend}\nS3 (moto): {s3.url} bucket {args.bucket}\n"
              f"mlflow server --workers {args.workers} x {args.instances}: {urls}\n\n"
              f"tracking_uri: {urls}   (one per writer; Ctrl-C stops everything)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        for server in servers:
            server.stop()
        s3.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
