"""Start the team setup locally: PostgreSQL + S3 (moto) + ``mlflow server --workers N``.

The same helpers the tests use (``tests/servers.py``), so what you try by hand is what CI
checks. Everything binds to 127.0.0.1, lives in a temp directory and stops on Ctrl-C::

    make team-stack                      # or: .venv/bin/python scripts/team_stack.py --workers 4

Then point a handler at the printed ``tracking_uri``. Needs Debian's ``postgresql`` and the
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
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    # Ctrl-C, or a plain `kill` (SIGTERM), stops the three servers through the finally below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="ca-team-stack-"))
    cluster = start_postgres()
    s3 = S3Server(args.bucket, root)
    server: MlflowServer | None = None
    try:
        backend = cluster.create_database(f"mlflow_{uuid.uuid4().hex[:6]}")
        s3.start()
        server = MlflowServer(backend, root / "artifacts", args.port,
                              artifacts_destination=f"s3://{args.bucket}", env=s3.env,
                              workers=args.workers)
        server.start()
        print(f"PostgreSQL: {backend}\nS3 (moto): {s3.url} bucket {args.bucket}\n"
              f"mlflow server --workers {args.workers}: {server.url}\n\n"
              f"tracking_uri: \"{server.url}\"   (Ctrl-C stops everything)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()
        s3.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
